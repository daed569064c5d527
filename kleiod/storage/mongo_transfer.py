"""Moving journals between databases, on the MongoDB side: export and import as stored.

Owns the export of a trial (as ``get_trial`` gives it, with each execution's
capture) and of its chunks in commit order, finding where this database
holds a chunk, and the import of trials and chunks exported from another
database, the chunks numbered anew from the same counter as appends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from kleiod.storage.mongo_executions import capture_fields, record_status
from kleiod.storage.mongo_trials import MongoTrials


class MongoTransfer(MongoTrials):
    """Exporting and importing trials and their chunks; the export reads trials as queried."""

    def export_trial(self, trial_id: str) -> dict[str, Any]:
        trial = self.get_trial(trial_id)
        with self._t("exporting a trial"):
            trial["captures"] = {
                e["number"]: json.loads(e["capture"])
                for e in self._db.executions.find({"trial_id": trial_id, "capture": {"$ne": None}})
            }
        return trial

    def export_chunks(self, trial_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        with self._t("exporting records"):
            for doc in self._db.chunks.find({"trial_id": {"$in": list(trial_ids)}}).sort(
                "chunk", 1
            ):
                doc.pop("_id")
                yield doc

    def chunk_number(self, trial_id: str, execution: int, producer: str, seq: int) -> int | None:
        with self._t("finding a chunk"):
            doc = self._db.chunks.find_one(
                {"trial_id": trial_id, "execution": execution, "producer": producer, "seq": seq},
                {"chunk": 1},
            )
        return None if doc is None else int(doc["chunk"])

    def import_trial(self, trial: dict[str, Any]) -> bool:
        with self._t("importing a trial"):
            try:
                self._db.trials.insert_one(
                    {
                        "_id": trial["id"],
                        "parent": trial["parent"],
                        "status": trial["status"],
                        "command": trial["command"],
                        "identity": json.dumps(trial["identity"], sort_keys=True),
                        "cwd": trial["cwd"],
                        "user": trial["user"],
                        "created": trial["created"],
                        "updated": trial["updated"],
                        "executions": len(trial["executions"]),
                        "owner_host": trial["host"],
                        "owner_pid": trial["pid"],
                        "owner_since": trial["since"],
                        "lease_until": None,
                        "root": trial["root"],
                        "branch_kind": trial["branch_kind"],
                        "branch_point": trial["branch_point"],
                        "tags": list(trial.get("tags") or []),
                    }
                )
            except DuplicateKeyError:
                return False
            captures = trial.get("captures") or {}
            for e in trial["executions"]:
                capture = captures.get(e["number"])
                self._db.executions.insert_one(
                    {
                        "trial_id": trial["id"],
                        "number": e["number"],
                        "host": e["host"],
                        "pid": e["pid"],
                        "started": e["start"],
                        "ended": e["end"],
                        "exit_code": e["exit_code"],
                        "status": e["status"],
                        "signals": e["signals"],
                        **capture_fields(capture),
                    }
                )
            for h in trial["history"]:
                record_status(self._db, trial["id"], h["execution"], h["status"], h["at"])
        return True

    def import_chunks(self, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
        mapping: dict[int, int] = {}
        if not rows:
            return mapping
        with self._t("importing records"):
            counter = self._db.counters.find_one_and_update(
                {"_id": "chunk"},
                {"$inc": {"value": len(rows)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            first = int((counter or {})["value"]) - len(rows) + 1
            for number, row in enumerate(rows, start=first):
                try:
                    self._db.chunks.insert_one({**row, "chunk": number})
                except DuplicateKeyError:
                    continue
                mapping[row["chunk"]] = number
        return mapping
