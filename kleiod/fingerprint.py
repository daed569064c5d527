"""Fingerprints of an execution's code and environment, and what changed between two.

Computed from captures at comparison time, with the field selection in force
then, so that changing which fields count never strands a stored trial.
Defaults (DESIGN.md): code = the files the trial ran (``imported``: its script and
the project's modules its processes imported, as their clients reported them,
beside each the content hash the CLI takes anew before a resume; a trial that
reported none, not Python or killed first, falls back to commit, patch and
untracked sources); environment = Python version, distributions and versions (not
kleio, not the project's own editable install), OS and architecture, and the
resources the trial logged (``log_resource``), hashed anew like the files.
Optional fields: ``commit``, ``patch``, ``untracked`` (the strict rule, without
``imported``), ``untracked_config`` (code); ``gpu``, ``hostname``, ``user``,
``variables`` (environment).

A capture compared here may hold ``imported``: {path relative to the project root:
sha256 or None (missing)}, the files the trial ran, or None when it reported none.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from kleio_client.protocol import (
    CODE_FIELDS,
    ENVIRONMENT_FIELDS,
    FALLBACK_CODE_FIELDS,
    FINGERPRINT_FIELDS,
)

KNOWN_CODE_FIELDS = FINGERPRINT_FIELDS["code"]
KNOWN_ENVIRONMENT_FIELDS = FINGERPRINT_FIELDS["environment"]
NOT_FINGERPRINTED = frozenset({"kleio"})


@dataclass(frozen=True)
class Fields:
    code: tuple[str, ...] = CODE_FIELDS
    environment: tuple[str, ...] = ENVIRONMENT_FIELDS

    @classmethod
    def from_wire(cls, value: dict[str, Any] | None) -> Fields:
        value = value or {}
        return cls(
            tuple(value.get("code", CODE_FIELDS)),
            tuple(value.get("environment", ENVIRONMENT_FIELDS)),
        )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def counted_code_fields(fields: Fields, reported: bool) -> frozenset[str]:
    """The code fields that count: with ``imported`` chosen, the files the trial ran when
    it ``reported`` them (and untracked configuration, if chosen); when it did not, the
    other fields chosen, commit, patch and untracked when none of those is."""
    chosen = frozenset(fields.code)
    if "imported" not in chosen:
        return chosen
    if reported:
        return chosen & {"imported", "untracked_config"}
    rest = chosen - {"imported"}
    return rest if rest & set(FALLBACK_CODE_FIELDS) else rest | set(FALLBACK_CODE_FIELDS)


def code_view(
    capture: dict[str, Any], fields: Fields, reported: bool | None = None
) -> dict[str, Any]:
    """The code as ``fields`` see it; ``reported``: whether both sides of the comparison
    have the files they ran (by default, whether this capture has them)."""
    code = capture.get("code") or {}
    if reported is None:
        reported = capture.get("imported") is not None
    counted = counted_code_fields(fields, reported)
    view: dict[str, Any] = {}
    if "imported" in counted:
        view["imported"] = dict(capture.get("imported") or {})
    elif not code.get("git"):
        return {"script": code.get("sha256")} if "commit" in counted else {}
    if "commit" in counted:
        view["commit"] = code.get("commit")
    if "patch" in counted:
        view["patch"] = hashlib.sha256((code.get("patch") or "").encode()).hexdigest()
    for field, kind in (("untracked", "code"), ("untracked_config", "config")):
        if field in counted:
            view[field] = {
                f["path"]: f["sha256"] for f in code.get("untracked") or [] if f.get("kind") == kind
            }
    return view


def environment_view(capture: dict[str, Any], fields: Fields) -> dict[str, Any]:
    env = capture.get("environment") or {}
    view: dict[str, Any] = {}
    if "python" in fields.environment:
        view["python"] = (env.get("python") or {}).get("version")
    if "packages" in fields.environment:
        view["packages"] = packages(capture)
    if "os" in fields.environment:
        view["os"] = f"{env.get('os')} {env.get('architecture')}"
    if "resources" in fields.environment:
        view["resources"] = capture.get("resources") or {}
    if "gpu" in fields.environment:
        view["gpu"] = sorted(g.get("model") for g in env.get("gpus") or [])
    for field in ("hostname", "user", "variables"):
        if field in fields.environment:
            view[field] = env.get(field)
    return view


def packages(capture: dict[str, Any]) -> dict[str, str]:
    """Distributions and versions, less kleio and the project's own editable install."""
    root = (capture.get("code") or {}).get("root")
    out = {}
    for name, info in ((capture.get("environment") or {}).get("packages") or {}).items():
        editable = info.get("editable") or ""
        if name in NOT_FINGERPRINTED or (root and _inside(editable, f"file://{root}")):
            continue
        out[name] = info.get("version")
    return out


def _inside(url: str, directory: str) -> bool:
    """Whether ``url`` is ``directory`` or under it (``/repo-tools`` is not under ``/repo``)."""
    return url == directory or url.startswith(directory.rstrip("/") + "/")


def fingerprints(capture: dict[str, Any], fields: Fields) -> tuple[str, str]:
    return _digest(code_view(capture, fields)), _digest(environment_view(capture, fields))


def describe_code(old: dict[str, Any], new: dict[str, Any], fields: Fields) -> list[str]:
    """What changed in the code, as short phrases (empty when nothing counted changed):
    in the files the trial ran when both sides have them, else as the fallback sees it."""
    reported = old.get("imported") is not None and new.get("imported") is not None
    a, b = code_view(old, fields, reported), code_view(new, fields, reported)
    changes = _dict_changes(
        "file",
        {k: v for k, v in (a.get("imported") or {}).items() if v is not None},
        {k: v for k, v in (b.get("imported") or {}).items() if v is not None},
        versions=False,
    )
    if a.get("script") != b.get("script"):
        changes.append("the script's content changed")
    if a.get("commit") != b.get("commit"):
        changes.append(f"commit {_short(a.get('commit'))} -> {_short(b.get('commit'))}")
    if a.get("patch") != b.get("patch"):
        before, after = patch_sections(old), patch_sections(new)
        files = sorted(f for f in set(before) | set(after) if before.get(f) != after.get(f))
        changes.append("uncommitted changes in " + (", ".join(files) or "no file"))
    for field in ("untracked", "untracked_config"):
        changes += _dict_changes(
            "untracked file", a.get(field) or {}, b.get(field) or {}, versions=False
        )
    return changes


def describe_environment(old: dict[str, Any], new: dict[str, Any], fields: Fields) -> list[str]:
    a, b = environment_view(old, fields), environment_view(new, fields)
    changes = []
    for field in ("python", "os", "gpu", "hostname", "user"):
        if field in a and a.get(field) != b.get(field):
            changes.append(f"{field} {a.get(field)} -> {b.get(field)}")
    changes += _dict_changes("package", a.get("packages") or {}, b.get("packages") or {})
    changes += _dict_changes(
        "resource", a.get("resources") or {}, b.get("resources") or {}, versions=False
    )
    if a.get("variables") != b.get("variables"):
        changes += _dict_changes("variable", a.get("variables") or {}, b.get("variables") or {})
    return changes


def _dict_changes(
    what: str, a: dict[str, Any], b: dict[str, Any], versions: bool = True
) -> list[str]:
    """One phrase per difference: ``pytest 8.3.4 added`` (a package: its name says what
    it is), ``numpy 1.26.4 -> 2.0.0``, ``file model.py changed``, ``variable LANG added``."""
    named = "" if what == "package" else f"{what} "
    added = sorted(set(b) - set(a))
    removed = sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    out = [f"{named}{k} {b[k]} added" if versions else f"{named}{k} added" for k in added]
    out += [f"{named}{k} {a[k]} removed" if versions else f"{named}{k} removed" for k in removed]
    out += [f"{named}{k} {a[k]} -> {b[k]}" if versions else f"{named}{k} changed" for k in changed]
    return out


def patch_sections(capture: dict[str, Any]) -> dict[str, str]:
    """The patch cut per file: {path: that file's part of the diff}."""
    patch = (capture.get("code") or {}).get("patch") or ""
    sections: dict[str, str] = {}
    for part in re.split(r"^(?=diff --git )", patch, flags=re.MULTILINE):
        match = re.match(r"diff --git a/(.+?) b/", part)
        if match:
            sections[match.group(1)] = part
    return sections


def _short(commit: str | None) -> str:
    return commit[:7] if commit else "none"
