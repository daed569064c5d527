"""Which trial a command runs, and the reservation of it.

A command names its trial; the trial and the branches made from it by
``--allow-*-change`` are the candidates.  The one whose fingerprints match
the new execution's capture runs (the most recently used, should several).
None matching: refused with what changed, unless the change is allowed; then
the most recent candidate is branched at the end of its history, the branch
id being hash(parent, code fingerprint, environment fingerprint) so that two
machines branching at once converge on one branch.  The reservation itself
is the storage's compare-and-set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from kleio_client import protocol
from kleiod import fingerprint
from kleiod.errors import ChangeRefused, TrialNotFound
from kleiod.fingerprint import Fields
from kleiod.storage.base import Claim, Reservation, Storage, TrialSpec

BRANCH_ID_LENGTH = 32


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
            existing = storage.get_trial(request.spec.id)
        except TrialNotFound:  # a new `kleio branch` child
            return Outcome(storage.reserve(request.spec, claim, request.capture))
        candidates = [{**existing, "capture": storage.capture(request.spec.id)}]
        spec = _spec_of(existing)
    else:
        candidates = storage.candidates(request.spec.id)
        spec = request.spec
    if not candidates:
        return Outcome(storage.reserve(spec, claim, request.capture))
    for candidate in candidates:
        candidate["resources"] = logged_resources(storage, candidate["id"])
    matching = [c for c in candidates if c["capture"] is None
                or fingerprint.fingerprints(_old(c), request.fields)
                == fingerprint.fingerprints(_new(c, request.capture), request.fields)]
    if matching:
        chosen = max(matching, key=lambda c: c["updated"])
        return Outcome(storage.reserve(_spec_for(spec, chosen), claim, request.capture))
    latest = max(candidates, key=lambda c: c["updated"])
    old, new = _old(latest), _new(latest, request.capture)
    code = fingerprint.describe_code(old, new, request.fields)
    environment = fingerprint.describe_environment(old, new, request.fields)
    wanted = fingerprint.fingerprints(new, request.fields)
    if (code and not request.allowed.code) or (environment and not request.allowed.environment):
        raise ChangeRefused(_refusal(latest, candidates, code, environment))
    branch = TrialSpec(
        id=_branch_id(latest["id"], *wanted), command=spec.command, identity=spec.identity,
        cwd=spec.cwd, user=spec.user, parent=latest["id"], root=spec.root or spec.id,
        branch_kind="change", branch_point=storage.end_position(latest["id"]),
    )
    return Outcome(storage.reserve(branch, claim, request.capture), latest["id"],
                   tuple(code + environment))


def logged_resources(storage: Storage, trial_id: str) -> dict[str, str | None]:
    """The resources a trial's executions logged: {path: content hash}, the latest per path."""
    return {r["body"]["path"]: r["body"]["sha256"]
            for r in storage.read_records(trial_id, [protocol.RESOURCE])}


def _old(candidate: dict[str, Any]) -> dict[str, Any]:
    """A candidate's capture with the resources its executions logged."""
    return {**candidate["capture"], "resources": candidate["resources"]}


def _new(candidate: dict[str, Any], capture: dict[str, Any]) -> dict[str, Any]:
    """The new capture with the hashes the CLI took now of that candidate's resources."""
    taken = capture.get("resources") or {}
    return {**capture, "resources": {path: taken.get(path) for path in candidate["resources"]}}


def _spec_of(trial: dict[str, Any]) -> TrialSpec:
    return TrialSpec(id=trial["id"], command=trial["command"], identity=trial["identity"],
                     cwd=trial["cwd"], user=trial["user"], parent=trial["parent"],
                     root=trial["root"], branch_kind=trial["branch_kind"],
                     branch_point=trial["branch_point"])


def _spec_for(spec: TrialSpec, chosen: dict[str, Any]) -> TrialSpec:
    return spec if chosen["id"] == spec.id else replace(spec, id=chosen["id"])


def _branch_id(parent: str, code: str, environment: str) -> str:
    digest = hashlib.sha256(f"change\0{parent}\0{code}\0{environment}".encode()).hexdigest()
    return digest[:BRANCH_ID_LENGTH]


def _refusal(latest: dict[str, Any], candidates: list[dict[str, Any]], code: list[str],
             environment: list[str]) -> str:
    kinds = " and ".join(k for k, v in (("code", code), ("environment", environment)) if v)
    lines = [f"kleio: the {kinds} changed since trial {latest['id'][:12]} last ran; "
             "not resuming it:"]
    lines += [f"  code: {change}" for change in code]
    lines += [f"  environment: {change}" for change in environment]
    if len(candidates) > 1:
        listed = ", ".join(f"{c['id'][:12]} ({c['status']})" for c in candidates)
        lines.append(f"  none of its branches matches either: {listed}")
    option = {"code": "--allow-code-change", "environment": "--allow-env-change"}.get(
        kinds, "--allow-any-change")
    lines.append(f"  run again with {option} (or --allow-any-change) to branch the trial "
                 "and run the branch; the original stays resumable with what it ran")
    return "\n".join(lines)
