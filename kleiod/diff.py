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
    """Configuration, code and environment changes from ``a`` to ``b``.  When both
    executions reported the files they ran (``imported``), the code is those files only:
    their changes, and the patches' parts about them."""
    ran = _files_ran(a, b)
    return {
        "configuration": _configuration(a.get("configuration") or {}, b.get("configuration") or {}),
        "code": {
            "changes": fingerprint.describe_code(a, b, ALL_FIELDS),
            "patch": _unified(_patch(a, ran), _patch(b, ran), labels),
            "imported": None if ran is None else sorted(ran),
        },
        "environment": fingerprint.describe_environment(a, b, ALL_FIELDS),
    }


def _files_ran(a: dict[str, Any], b: dict[str, Any]) -> set[str] | None:
    """The files either ran, when both reported theirs; else None."""
    if a.get("imported") is None or b.get("imported") is None:
        return None
    return set(a["imported"]) | set(b["imported"])


def _patch(capture: dict[str, Any], files: set[str] | None) -> str:
    """The capture's uncommitted patch; with ``files``, only its parts about them."""
    if files is None:
        return (capture.get("code") or {}).get("patch") or ""
    sections = fingerprint.patch_sections(capture)
    return "".join(part for path, part in sections.items() if path in files)


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
