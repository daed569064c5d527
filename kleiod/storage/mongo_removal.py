"""Removing trials from MongoDB, and what its records say of artifacts.

A trial's chunks may be too many for one transaction, so a removal goes in steps that
the daemons of other machines, sharing the database, cannot come between:

1. each trial is marked ``removing`` by this removal in one compare-and-set that
   refuses a running one (and one another removal is removing) and increments its
   execution number, the fencing token: from then on no daemon reserves, resumes or
   joins it, and a late write of an execution that ran is refused;
2. with all of them marked, no trial outside them may be a branch of one (a new branch
   checks its parent after it is created, the other side of the same race: of the two,
   at least one sees the other and is refused); if one is, the marks are taken back;
3. their chunks, executions and status history are deleted, then the trials
   themselves, branches before their parents.  A removal cut short (a daemon killed)
   leaves trials marked ``removing``: once the mark is ``STALE_SECONDS`` old, another
   removal takes it over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument

from kleio_client import protocol
from kleiod import states
from kleiod.errors import TrialNotFound
from kleiod.storage.base import (
    REMOVING,
    artifact_hashes_in,
    has_branches,
    outside_branches,
    running_trial,
)
from kleiod.storage.mongo_connection import MongoConnection

# How old the mark of a removal is when it was cut short: longer than any removal takes.
STALE_SECONDS = 600.0


class MongoRemoval(MongoConnection):
    """Removing trials; the artifacts their records name."""

    def remove_trials(self, trial_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(trial_ids))
        removal = uuid.uuid4().hex
        with self._t(f"removing {len(ids)} trials"):
            marked: list[dict[str, Any]] = []
            try:
                for trial_id in ids:
                    marked.append(self._mark_removing(trial_id, removal))
                pairs = self._db.trials.find({"parent": {"$in": ids}}, {"_id": 1, "parent": 1})
                left = outside_branches(ids, ((d["_id"], d["parent"]) for d in pairs))
                if left is not None:
                    raise has_branches(*left)
            except BaseException:
                self._unmark(marked, removal)
                raise
            for trial_id in reversed(self._parents_first(ids)):
                for collection in ("chunks", "executions", "history"):
                    self._db[collection].delete_many({"trial_id": trial_id})
                self._db.trials.delete_one({"_id": trial_id, "removal": removal})

    def _mark_removing(self, trial_id: str, removal: str) -> dict[str, Any]:
        """The trial as it was before this removal marked it; refused when missing,
        running, or being removed by another removal."""
        now = self.clock()
        mark = {"status": REMOVING, "removal": removal, "removal_since": now}
        before = self._db.trials.find_one_and_update(
            {"_id": trial_id, "status": {"$nin": [states.RUNNING, REMOVING]}},
            {"$set": mark, "$inc": {"executions": 1}},
            {"status": 1},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:  # the mark of a removal cut short: taken over, fenced already
            before = self._db.trials.find_one_and_update(
                {
                    "_id": trial_id,
                    "status": REMOVING,
                    "removal_since": {"$lt": now - STALE_SECONDS},
                },
                {"$set": mark},
                {"status": 1},
                return_document=ReturnDocument.BEFORE,
            )
        if before is not None:
            return before
        found = self._db.trials.find_one({"_id": trial_id})
        if found is None:
            raise TrialNotFound(f"no trial {trial_id}")
        if found["status"] == REMOVING:
            raise TrialNotFound(f"trial {trial_id[:12]} is being removed by another kleio rm")
        raise running_trial(trial_id, found.get("owner_host"), found.get("owner_pid"))

    def _unmark(self, marked: list[dict[str, Any]], removal: str) -> None:
        """Take back this removal's marks; a mark taken over stays (what it marked is gone)."""
        for before in marked:
            if before["status"] == REMOVING:
                continue
            self._db.trials.update_one(
                {"_id": before["_id"], "removal": removal},
                {
                    "$set": {"status": before["status"]},
                    "$unset": {"removal": "", "removal_since": ""},
                    "$inc": {"executions": -1},
                },
            )

    def _parents_first(self, ids: list[str]) -> list[str]:
        parents = {
            d["_id"]: d.get("parent")
            for d in self._db.trials.find({"_id": {"$in": ids}}, {"parent": 1})
        }

        def depth(trial_id: str) -> int:
            parent, seen = parents.get(trial_id), 0
            while parent in parents and seen < len(parents):
                parent, seen = parents[parent], seen + 1
            return seen

        return sorted(ids, key=depth)

    def artifact_hashes(self) -> set[str]:
        with self._t("reading the artifacts' records"):
            docs = self._db.chunks.find({"kind": protocol.ARTIFACT}, {"body": 1})
            return artifact_hashes_in(d["body"] for d in docs)
