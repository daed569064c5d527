"""Moving journals between databases, on the SQLite side: export and import as stored.

Owns the export of a trial (as ``get_trial`` gives it, with each execution's
capture) and of its chunks in commit order, finding where this file holds a
chunk, and the import of trials and chunks exported from another database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from kleiod.storage.base import stored_capture
from kleiod.storage.sqlite_connection import translated
from kleiod.storage.sqlite_executions import record_status
from kleiod.storage.sqlite_trials import SQLiteTrials


class SQLiteTransfer(SQLiteTrials):
    """Exporting and importing trials and their chunks; the export reads trials as queried."""

    def export_trial(self, trial_id: str) -> dict[str, Any]:
        trial = self.get_trial(trial_id)
        with translated("exporting a trial"):
            trial["captures"] = {
                number: json.loads(text)
                for number, text in self._db.execute(
                    "SELECT number, capture FROM executions WHERE trial_id = ? AND capture "
                    "IS NOT NULL",
                    (trial_id,),
                )
            }
        return trial

    def export_chunks(self, trial_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        marks = ",".join("?" * len(trial_ids))
        with translated("exporting records"):
            cursor = self._db.execute(
                "SELECT chunk, trial_id, execution, producer, seq, count, kind, body FROM "
                f"chunks WHERE trial_id IN ({marks}) ORDER BY chunk",
                tuple(trial_ids),
            )
            keys = ("chunk", "trial_id", "execution", "producer", "seq", "count", "kind", "body")
            for row in cursor:
                yield dict(zip(keys, row, strict=True))

    def chunk_number(self, trial_id: str, execution: int, producer: str, seq: int) -> int | None:
        with translated("finding a chunk"):
            row = self._db.execute(
                "SELECT chunk FROM chunks WHERE trial_id = ? AND execution = ? AND producer = ? "
                "AND seq = ?",
                (trial_id, execution, producer, seq),
            ).fetchone()
        return None if row is None else int(row[0])

    def import_trial(self, trial: dict[str, Any]) -> bool:
        """Insert an exported trial as it was; False when this database has it already."""
        with self._transaction("importing a trial") as db:
            if db.execute("SELECT 1 FROM trials WHERE id = ?", (trial["id"],)).fetchone():
                return False
            db.execute(
                "INSERT INTO trials (id, parent, status, command, identity, cwd, user, created, "
                "updated, executions, owner_host, owner_pid, owner_since, lease_until, root, "
                "branch_kind, branch_point, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "NULL, ?, ?, ?, ?)",
                (
                    trial["id"],
                    trial["parent"],
                    trial["status"],
                    json.dumps(trial["command"]),
                    json.dumps(trial["identity"], sort_keys=True),
                    trial["cwd"],
                    trial["user"],
                    trial["created"],
                    trial["updated"],
                    len(trial["executions"]),
                    trial["host"],
                    trial["pid"],
                    trial["since"],
                    trial["root"],
                    trial["branch_kind"],
                    trial["branch_point"],
                    json.dumps(trial.get("tags") or []),
                ),
            )
            captures = trial.get("captures") or {}
            for e in trial["executions"]:
                capture = captures.get(e["number"])
                db.execute(
                    "INSERT INTO executions (trial_id, number, host, pid, started, ended, "
                    "exit_code, status, signals, capture, configuration) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        trial["id"],
                        e["number"],
                        e["host"],
                        e["pid"],
                        e["start"],
                        e["end"],
                        e["exit_code"],
                        e["status"],
                        json.dumps(e["signals"]),
                        *stored_capture(capture),
                    ),
                )
            for h in trial["history"]:
                record_status(db, trial["id"], h["execution"], h["status"], h["at"])
        return True

    def import_chunks(self, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
        """Append exported chunks in their order; return {old chunk number: new}."""
        mapping = {}
        with self._transaction("importing records") as db:
            for row in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO chunks (trial_id, execution, producer, seq, count, "
                    "kind, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        row["trial_id"],
                        row["execution"],
                        row["producer"],
                        row["seq"],
                        row["count"],
                        row["kind"],
                        row["body"],
                    ),
                )
                if cursor.rowcount:
                    mapping[row["chunk"]] = int(cursor.lastrowid or 0)
        return mapping
