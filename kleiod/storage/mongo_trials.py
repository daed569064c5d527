"""The trials in MongoDB as the daemon and the CLI query them.

Owns the reads of trials: a command's trial and its change-branches with
their captures, an execution's capture, where a trial's own history ends,
the resolution of a short id, the list of trials, one trial with its
executions and status history; and the one write that is not an
execution's, a trial's tags.  Identities and captures hold user keys
(package and file names contain dots), so they are stored as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument

from kleiod.errors import TrialNotFound
from kleiod.storage.base import POSITION_STRIDE, configuration_of, id_prefix, the_one
from kleiod.storage.mongo_connection import MongoConnection

# Beside each trial, in the same query, the configuration of its latest execution that has
# a capture (by the index on trial_id and number): as stored apart, or for an execution
# stored without it (by an older Kleio), the capture whole.
_LATEST = {
    "$lookup": {
        "from": "executions",
        "let": {"trial": "$_id"},
        "as": "latest",
        "pipeline": [
            {"$match": {"$expr": {"$eq": ["$trial_id", "$$trial"]}, "capture": {"$ne": None}}},
            {"$sort": {"number": -1}},
            {"$limit": 1},
            {
                "$project": {
                    "_id": 0,
                    "configuration": 1,
                    "capture": {
                        "$cond": {
                            "if": {"$ifNull": ["$configuration", False]},
                            "then": None,
                            "else": "$capture",
                        }
                    },
                }
            },
        ],
    }
}


class MongoTrials(MongoConnection):
    """Querying trials, and tagging them."""

    def candidates(self, root: str) -> list[dict[str, Any]]:
        with self._t("reading a trial's branches"):
            docs = list(
                self._db.trials.find(
                    {
                        "$or": [{"_id": root}, {"root": root}],
                        "branch_kind": {"$in": [None, "change"]},
                    }
                ).sort("updated", 1)
            )
        return [
            {
                "id": d["_id"],
                "status": d["status"],
                "updated": d["updated"],
                "parent": d.get("parent"),
                "branch_kind": d.get("branch_kind"),
                "capture": self.capture(d["_id"]),
            }
            for d in docs
        ]

    def capture(self, trial_id: str, execution: int | None = None) -> dict[str, Any] | None:
        with self._t("reading a capture"):
            if execution is None:
                doc = self._db.executions.find_one(
                    {"trial_id": trial_id, "capture": {"$ne": None}}, sort=[("number", -1)]
                )
            else:
                doc = self._db.executions.find_one({"trial_id": trial_id, "number": execution})
        return (
            None if doc is None or doc.get("capture") is None else dict(json.loads(doc["capture"]))
        )

    def end_position(self, trial_id: str) -> int | None:
        with self._t("reading the end of a history"):
            doc = self._db.chunks.find_one({"trial_id": trial_id}, sort=[("chunk", -1)])
            if doc is not None:
                return int(doc["chunk"] * POSITION_STRIDE + doc["count"] - 1)
            trial = self._db.trials.find_one({"_id": trial_id}, {"branch_point": 1})
        return None if trial is None else trial.get("branch_point")

    def resolve_id(self, prefix: str) -> str:
        low = id_prefix(prefix)
        with self._t("resolving an id"):
            found = [
                d["_id"]
                for d in self._db.trials.find(
                    {"_id": {"$gte": low, "$lt": low + "g"}}, {"_id": 1}
                ).limit(2)
            ]
        return the_one(prefix, found)

    def list_trials(self, configurations: bool = False) -> list[dict[str, Any]]:
        with self._t("listing trials"):
            if configurations:
                docs = list(self._db.trials.aggregate([{"$sort": {"created": 1}}, _LATEST]))
            else:
                docs = list(self._db.trials.find().sort("created", 1))
        trials = [
            {
                "id": d["_id"],
                "status": d["status"],
                "command": d["command"],
                "created": d["created"],
                "updated": d["updated"],
                "parent": d.get("parent"),
                "host": d.get("owner_host"),
                "executions": d["executions"],
                "branch_kind": d.get("branch_kind"),
                "tags": sorted(d.get("tags") or []),
            }
            for d in docs
        ]
        if configurations:
            for trial, doc in zip(trials, docs, strict=True):
                latest = doc["latest"][0] if doc["latest"] else {}
                stored = latest.get("configuration")
                trial["configuration"] = (
                    json.loads(stored)
                    if stored is not None
                    else configuration_of(json.loads(latest.get("capture") or "null"))
                )
        return trials

    def set_tags(self, trial_id: str, add: Sequence[str], remove: Sequence[str]) -> list[str]:
        with self._t(f"tagging trial {trial_id}"):
            found = self._db.trials.find_one_and_update(
                {"_id": trial_id}, {"$addToSet": {"tags": {"$each": list(add)}}}
            )
            if found is None:
                raise TrialNotFound(f"no trial {trial_id}")
            d = self._db.trials.find_one_and_update(
                {"_id": trial_id},
                {"$pull": {"tags": {"$in": list(remove)}}},
                return_document=ReturnDocument.AFTER,
            )
        return sorted((d or {}).get("tags") or [])

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        with self._t("reading a trial"):
            d = self._db.trials.find_one({"_id": trial_id})
            if d is None:
                raise TrialNotFound(f"no trial {trial_id}")
            executions = list(self._db.executions.find({"trial_id": trial_id}).sort("number", 1))
            history = list(self._db.history.find({"trial_id": trial_id}).sort("at", 1))
        return {
            "id": d["_id"],
            "status": d["status"],
            "command": d["command"],
            "identity": json.loads(d["identity"]),
            "cwd": d["cwd"],
            "user": d["user"],
            "created": d["created"],
            "updated": d["updated"],
            "parent": d.get("parent"),
            "host": d.get("owner_host"),
            "pid": d.get("owner_pid"),
            "since": d.get("owner_since"),
            "root": d.get("root"),
            "branch_kind": d.get("branch_kind"),
            "branch_point": d.get("branch_point"),
            "tags": sorted(d.get("tags") or []),
            "executions": [
                {
                    "number": e["number"],
                    "host": e["host"],
                    "pid": e.get("pid"),
                    "start": e["started"],
                    "end": e.get("ended"),
                    "exit_code": e.get("exit_code"),
                    "status": e["status"],
                    "signals": e.get("signals") or [],
                }
                for e in executions
            ],
            "history": [
                {"execution": h["execution"], "status": h["status"], "at": h["at"]} for h in history
            ],
        }
