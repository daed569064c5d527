"""Which trial a command runs, and the reservation of it.

A command names its trial; the trial and the branches made from it by
``--allow-*-change`` are the candidates.  The one whose fingerprints match
the new execution's capture runs (the most recently used, should several).
None matching: refused with what changed, unless the change is allowed; then
the most recent candidate is branched at the end of its history, the branch
id being hash(parent, code fingerprint, environment fingerprint) so that two
machines branching at once converge on one branch.  A new ``kleio branch``
child is compared with its parent the same way.  The reservation itself is
the storage's compare-and-set.

Three things are compared besides the captures: the files the candidate's
executions ran (as their clients reported them; hashed anew by the CLI), the
resources they logged (hashed anew too), and untracked files only as far as
the trial did not write them itself (those modified while one of the
candidate's executions ran).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any

from kleio_client import protocol
from kleiod import fingerprint
from kleiod.errors import ChangeRefused, TrialNotFound
from kleiod.fingerprint import Fields
from kleiod.storage.base import Claim, Reservation, Storage, TrialSpec

BRANCH_ID_LENGTH = 32
MTIME_SLACK = 0.01  # seconds: the window (reservation to reported end) brackets the run


@dataclass(frozen=True)
class Allowed:
    code: bool = False
    environment: bool = False


@dataclass(frozen=True)
class Request:
    spec: TrialSpec
    capture: dict[str, Any]
    fields: Fields
    allowed: Allowed
    exact: bool = False  # resume this id: no selection among branches


@dataclass(frozen=True)
class Outcome:
    reservation: Reservation
    branched_from: str | None = None
    changes: tuple[str, ...] = ()


def reserve(storage: Storage, request: Request, claim: Claim) -> Outcome:
    if request.exact:
        try:
            candidates = [_candidate(storage, storage.get_trial(request.spec.id))]
        except TrialNotFound:
            return _new_child(storage, request, claim)
        spec = _spec_of(candidates[0])
    else:
        candidates = [_candidate(storage, c) for c in storage.candidates(request.spec.id)]
        spec = request.spec
    if not candidates:
        return Outcome(storage.reserve(spec, claim, request.capture))
    matching = [c for c in candidates if _changes(c, request).matches]
    if matching:
        chosen = max(matching, key=lambda c: c["updated"])
        return Outcome(storage.reserve(_spec_for(spec, chosen), claim, request.capture))
    latest = max(candidates, key=lambda c: c["updated"])
    change = _changes(latest, request)
    code, environment = change.code, change.environment
    _check_allowed(
        request, code, environment, lambda: _refusal(latest, candidates, code, environment)
    )
    branch = TrialSpec(
        id=_branch_id(latest["id"], *change.fingerprints),
        command=spec.command,
        identity=spec.identity,
        cwd=spec.cwd,
        user=spec.user,
        parent=latest["id"],
        root=spec.root or spec.id,
        branch_kind="change",
        branch_point=storage.end_position(latest["id"]),
    )
    reservation = storage.reserve(branch, claim, request.capture)
    created = reservation.previous_status is None
    return Outcome(
        reservation, latest["id"] if created else None, tuple(code + environment) if created else ()
    )


def _new_child(storage: Storage, request: Request, claim: Claim) -> Outcome:
    """A new ``kleio branch`` child: it continues its parent's work, so the same checks."""
    parent_id = request.spec.parent
    if parent_id is not None:
        parent = _candidate(storage, storage.get_trial(parent_id))
        change = _changes(parent, request)
        _check_allowed(
            request,
            change.code,
            change.environment,
            lambda: _refusal(parent, [parent], change.code, change.environment, "branching"),
        )
    return Outcome(storage.reserve(request.spec, claim, request.capture))


def _candidate(storage: Storage, trial: dict[str, Any]) -> dict[str, Any]:
    """A trial with what comparing needs: its capture, when it ran, the files it ran, and
    its resources: the ones it logged, else the hashes taken when it started (a branch
    made because a resource changed, that has not logged it yet)."""
    now = time.time()
    capture = trial.get("capture") or storage.capture(trial["id"])
    return {
        **trial,
        "capture": capture,
        "imported": imported_files(storage, trial["id"]),
        "resources": logged_resources(storage, trial["id"])
        or dict((capture or {}).get("resources") or {}),
        "windows": [
            (e["start"] - MTIME_SLACK, (e["end"] or now) + MTIME_SLACK)
            for e in trial.get("executions") or storage.get_trial(trial["id"])["executions"]
        ],
    }


def logged_resources(storage: Storage, trial_id: str) -> dict[str, str | None]:
    """The resources a trial's executions logged: {path: content hash}, the latest per path."""
    return {
        r["body"]["path"]: r["body"]["sha256"]
        for r in storage.read_records(trial_id, [protocol.RESOURCE])
    }


def imported_files(
    storage: Storage, trial_id: str, execution: int | None = None
) -> dict[str, str] | None:
    """The files a trial's executions ran (or execution ``execution`` ran), as their
    processes reported them: {path relative to the project root: sha256}, the latest
    report of each path; None when none reported any (not Python, killed first, run
    before Kleio took reports)."""
    records = storage.read_records(trial_id, [protocol.IMPORTED])
    if execution is not None:
        records = [r for r in records if r["execution"] == execution]
    if not records:
        return None
    files: dict[str, str] = {}
    for record in records:
        files.update(record["body"]["files"])
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class Change:
    """The request against one candidate: whether it matches, else what changed; and the
    request's fingerprints as seen against that candidate."""

    matches: bool
    code: list[str]
    environment: list[str]
    fingerprints: tuple[str, str]


def _changes(candidate: dict[str, Any], request: Request) -> Change:
    if candidate["capture"] is None:  # nothing captured yet to compare with
        return Change(True, [], [], fingerprint.fingerprints(request.capture, request.fields))
    written = _written_by(candidate, request.capture)
    # The files the candidate ran, as they are now (the CLI hashed them; it hashes none
    # outside git): compared by content when both are known, else the fallback counts.
    now = request.capture.get("imported")
    ran = candidate["imported"] if now is not None else None
    current = None if now is None or ran is None else {path: now.get(path) for path in ran}
    old = _comparable(candidate["capture"], candidate["resources"], written, ran)
    taken = request.capture.get("resources") or {}
    new = _comparable(
        request.capture,
        {path: taken.get(path) for path in candidate["resources"]},
        written,
        current,
    )
    wanted = fingerprint.fingerprints(new, request.fields)
    if fingerprint.fingerprints(old, request.fields) == wanted:
        return Change(True, [], [], wanted)
    code = fingerprint.describe_code(old, new, request.fields)
    environment = fingerprint.describe_environment(old, new, request.fields)
    if not code and not environment:  # a difference no phrase names: still a difference
        code = ["the captured code differs"]
    return Change(False, code, environment, wanted)


def _written_by(candidate: dict[str, Any], capture: dict[str, Any]) -> set[str]:
    """The untracked files the candidate's executions wrote (modified while one of them
    ran): what they hold is the trial's output, not its code."""
    return {
        f.get("path")
        for f in (capture.get("code") or {}).get("untracked") or []
        if _written_during(f.get("mtime"), candidate["windows"])
    }


def _comparable(
    capture: dict[str, Any],
    resources: dict[str, str | None],
    written: set[str],
    imported: dict[str, str | None] | None,
) -> dict[str, Any]:
    """The capture with those resources and files run, and without the ``written``
    untracked files (on both sides: one the user had before the trial rewrote it is no
    change either)."""
    code = dict(capture.get("code") or {})
    code["untracked"] = [f for f in code.get("untracked") or [] if f.get("path") not in written]
    return {**capture, "code": code, "resources": resources, "imported": imported}


def _written_during(mtime: float | None, windows: list[tuple[float, float]]) -> bool:
    return mtime is not None and any(start <= mtime <= end for start, end in windows)


def _check_allowed(request: Request, code: list[str], environment: list[str], refusal: Any) -> None:
    if (code and not request.allowed.code) or (environment and not request.allowed.environment):
        raise ChangeRefused(refusal())


def _spec_of(trial: dict[str, Any]) -> TrialSpec:
    return TrialSpec(
        id=trial["id"],
        command=trial["command"],
        identity=trial["identity"],
        cwd=trial["cwd"],
        user=trial["user"],
        parent=trial["parent"],
        root=trial["root"],
        branch_kind=trial["branch_kind"],
        branch_point=trial["branch_point"],
    )


def _spec_for(spec: TrialSpec, chosen: dict[str, Any]) -> TrialSpec:
    return spec if chosen["id"] == spec.id else replace(spec, id=chosen["id"])


def _branch_id(parent: str, code: str, environment: str) -> str:
    digest = hashlib.sha256(f"change\0{parent}\0{code}\0{environment}".encode()).hexdigest()
    return digest[:BRANCH_ID_LENGTH]


def _refusal(
    latest: dict[str, Any],
    candidates: list[dict[str, Any]],
    code: list[str],
    environment: list[str],
    doing: str = "resuming",
) -> str:
    kinds = " and ".join(k for k, v in (("code", code), ("environment", environment)) if v)
    if latest["status"] == "completed" and doing == "resuming":
        return _nothing_to_run(latest["id"][:12], code, environment)
    lines = [
        f"kleio: the {kinds} changed since trial {latest['id'][:12]} last ran; not {doing} it:"
    ]
    lines += [f"  code: {change}" for change in _few(code, latest["id"][:12])]
    lines += [f"  environment: {change}" for change in _few(environment, latest["id"][:12])]
    if len(candidates) > 1:
        listed = ", ".join(f"{c['id'][:12]} ({c['status']})" for c in candidates)
        lines.append(f"  none of its branches matches either: {listed}")
    options = {
        "code": "--allow-code-change or --allow-any-change",
        "environment": "--allow-env-change or --allow-any-change",
    }.get(kinds, "--allow-any-change")
    lines.append(
        f"  run again with {options} to branch the trial and run the branch; "
        "the original stays resumable with what it ran"
    )
    return "\n".join(lines)


LISTED = 5  # differences a refusal names; `kleio diff` shows the rest


def _few(changes: list[str], trial: str) -> list[str]:
    if len(changes) <= LISTED:
        return changes
    more = len(changes) - LISTED
    return changes[:LISTED] + [f"and {more} more: `kleio diff {trial}` shows them all"]


def _nothing_to_run(trial: str, code: list[str], environment: list[str]) -> str:
    """A completed trial whose code or environment differs from here: nothing of it is
    left to run, and running it again here is a branch, made with the option named."""
    where = {
        (False, True): ("in another environment", "--allow-env-change"),
        (True, False): ("with other code", "--allow-code-change"),
    }.get(
        (bool(code), bool(environment)), ("with other code and environment", "--allow-any-change")
    )
    changes = code + environment
    packages = len(environment) == len(changes) and all(_is_package(c) for c in changes)
    counted = f"{len(changes)} {'packages differ' if packages else 'differences'}"
    if len(changes) == 1:
        counted = "1 package differs" if packages else "1 difference"
    listed = ", ".join(changes[:LISTED])
    if len(changes) > LISTED:
        listed += f", ... (`kleio diff {trial}` shows all)"
    return (
        f"kleio: trial {trial} completed {where[0]} ({counted}: {listed}); nothing to run. "
        f"To run it again here, add {where[1]}"
    )


def _is_package(change: str) -> bool:
    """Whether a phrase of describe_environment is about a package (``torch 2.1 added``)."""
    return not change.startswith(
        ("python ", "os ", "gpu ", "hostname ", "user ", "resource ", "variable ")
    )
