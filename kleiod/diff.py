"""The differences between two executions' captures, for ``kleio diff``."""

from __future__ import annotations

import difflib
from typing import Any

from kleiod import fingerprint
from kleiod.fingerprint import Fields

ALL_FIELDS = Fields(
    code=tuple(sorted(fingerprint.KNOWN_CODE_FIELDS)),
    environment=("python", "packages", "os", "gpu", "hostname", "user"),
)


def compare(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> dict[str, Any]:
    return {
        "configuration": _configuration(a.get("configuration") or {}, b.get("configuration") or {}),
        "code": {
            "changes": fingerprint.describe_code(a, b, ALL_FIELDS),
            "patch": _unified(
                (a.get("code") or {}).get("patch") or "",
                (b.get("code") or {}).get("patch") or "",
                labels,
            ),
        },
        "environment": fingerprint.describe_environment(a, b, ALL_FIELDS),
    }


def _configuration(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    changes = []
    if a.get("positional") != b.get("positional"):
        changes.append(f"positional arguments {a.get('positional')} -> {b.get('positional')}")
    options_a, options_b = a.get("options") or {}, b.get("options") or {}
    for name in sorted(set(options_a) | set(options_b)):
        if options_a.get(name, "(unset)") != options_b.get(name, "(unset)"):
            changes.append(
                f"{name} {options_a.get(name, '(unset)')} -> {options_b.get(name, '(unset)')}"
            )
    files_a, files_b = a.get("files") or {}, b.get("files") or {}
    for name in sorted(set(files_a) | set(files_b)):
        before = (files_a.get(name) or {}).get("content") or ""
        after = (files_b.get(name) or {}).get("content") or ""
        if before != after:
            changes.append(
                f"file {name} changed:\n"
                + "".join(
                    difflib.unified_diff(
                        before.splitlines(True), after.splitlines(True), f"a/{name}", f"b/{name}"
                    )
                )
            )
    return changes


def _unified(a: str, b: str, labels: tuple[str, str]) -> str:
    """A diff of the two uncommitted patches (what one ran that the other did not)."""
    return "".join(
        difflib.unified_diff(
            a.splitlines(True), b.splitlines(True), f"patch of {labels[0]}", f"patch of {labels[1]}"
        )
    )
