"""Removing trials and collecting the artifacts no trial references: the daemon's side of
`kleio rm` and `kleio gc`.

A trial goes with its `kleio pdb` sessions (scratch branches, never listed), and with
its other branches only when asked (``with_branches``): a branch reads its parent's
history.  What one plan names, the storage removes all or none, checking again.

An artifact's bytes are stored before the record that names them is committed: the
client uploads them, then journals the record, which the daemon batches (and a daemon
of another machine may hold it while this one collects).  So `kleio gc` deletes only
the bytes that no record names *and* that were last stored longer than a grace period
ago (an hour by default), on the database's clock: an upload of the same bytes stores
them again, so bytes a trial is about to record are never that old, whichever daemon
took them.  The storage checks that time again as it deletes (``delete_blob``).  A lock
in this daemon would not do: the daemons of other machines share a MongoDB journal, and
records wait in clients (and spill files) while no daemon runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kleio_client import protocol
from kleiod import states
from kleiod.errors import BadRequest
from kleiod.storage.base import SCRATCH, Storage, has_branches, running_trial

DEFAULT_GRACE_SECONDS = 3600.0


class Removal:
    """The verbs ``rm_plan`` (what would go), ``rm`` and ``gc``; each first commits what
    ingest holds, so that every record sent so far counts."""

    def __init__(self, storage: Storage, commit: Callable[[], None]) -> None:
        self._storage = storage
        self._commit = commit

    def table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        verbs = {"rm_plan": self.plan, "rm": self.remove, "gc": self.collect}
        return {name: self._committed(verb) for name, verb in verbs.items()}

    def _committed(self, verb: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def run(args: dict[str, Any]) -> Any:
            self._commit()
            return verb(args)

        return run

    def plan(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The trials that removing ``ids`` removes, parents first, each with its status,
        command and how many statistics and artifacts it logged; refused as the removal
        would be."""
        prefixes = args.get("ids")
        if not isinstance(prefixes, list) or not prefixes:
            raise BadRequest("rm takes a list of trial ids")
        ids = [self._storage.resolve_id(str(prefix)) for prefix in prefixes]
        trials = self._subtrees(ids, bool(args.get("with_branches")))
        for trial in trials:
            if trial["status"] == states.RUNNING:
                found = self._storage.get_trial(trial["id"])
                raise running_trial(trial["id"], found["host"], found["pid"])
        return [self._described(trial) for trial in trials]

    def remove(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Remove what ``plan`` names; the trials removed, as it described them."""
        trials = self.plan(args)
        self._storage.remove_trials([trial["id"] for trial in trials])
        return trials

    def _subtrees(self, ids: list[str], with_branches: bool) -> list[dict[str, Any]]:
        listed = self._storage.list_trials()
        children: dict[str, list[dict[str, Any]]] = {}
        by_id = {trial["id"]: trial for trial in listed}
        for trial in listed:
            if trial["parent"] is not None:
                children.setdefault(trial["parent"], []).append(trial)
        chosen: dict[str, dict[str, Any]] = {}
        waiting = [by_id[i] for i in ids if i in by_id]
        while waiting:
            trial = waiting.pop(0)
            if trial["id"] in chosen:
                continue
            chosen[trial["id"]] = trial
            waiting += [
                child
                for child in children.get(trial["id"], [])
                if with_branches or child["branch_kind"] == SCRATCH
            ]
        for trial_id in chosen:
            left = [c["id"] for c in children.get(trial_id, []) if c["id"] not in chosen]
            if left:
                raise has_branches(trial_id, left)
        return list(chosen.values())

    def _described(self, trial: dict[str, Any]) -> dict[str, Any]:
        def count(kind: str) -> int:
            return sum(self._storage.logged_counts(trial["id"], [kind]).values())

        return {
            "id": trial["id"],
            "status": trial["status"],
            "command": trial["command"],
            "parent": trial["parent"],
            "branch_kind": trial["branch_kind"],
            "executions": trial["executions"],
            "statistics": count(protocol.STATISTIC),
            "artifacts": count(protocol.ARTIFACT),
        }

    def collect(self, args: dict[str, Any]) -> dict[str, Any]:
        """Delete the artifacts' bytes that no record names and that were last stored
        more than ``grace`` seconds ago (none with ``dry_run``): how many, how many bytes,
        and how many unnamed ones were kept as too recent; and what uploads and deletions
        cut short left behind, untouched for as long (``leftovers``)."""
        grace = float(args.get("grace", DEFAULT_GRACE_SECONDS))
        if not grace >= 0:
            raise BadRequest(f"gc: the grace period is a number of seconds >= 0, not {grace}")
        dry_run = bool(args.get("dry_run"))
        before = self._storage.clock() - grace
        leftovers = self._storage.sweep_leftovers(before, dry_run)
        blobs = self._storage.list_blobs()
        named = self._storage.artifact_hashes()
        freed = {"blobs": 0, "bytes": 0}
        recent = {"blobs": 0, "bytes": 0}
        for blob in blobs:
            if blob.sha256 in named:
                continue
            size: int | None = blob.size
            if blob.stored >= before:
                recent["blobs"] += 1
                recent["bytes"] += blob.size
                continue
            if not dry_run:
                size = self._storage.delete_blob(blob.sha256, before)
            if size is not None:
                freed["blobs"] += 1
                freed["bytes"] += size
        return {
            **freed,
            "recent_blobs": recent["blobs"],
            "recent_bytes": recent["bytes"],
            "referenced_blobs": sum(1 for blob in blobs if blob.sha256 in named),
            "leftovers": leftovers.pieces,
            "leftover_bytes": leftovers.bytes,
            "grace": grace,
            "dry_run": dry_run,
        }
