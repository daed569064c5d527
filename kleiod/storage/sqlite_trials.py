"""The trials of the SQLite journal as the daemon and the CLI query them.

Owns the reads of trials: a command's trial and its change-branches with
their captures, an execution's capture, where a trial's own history ends,
the resolution of a short id, the list of trials, one trial with its
executions and status history; and the one write that is not an execution's,
a trial's tags.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kleiod.errors import TrialNotFound
from kleiod.storage.base import POSITION_STRIDE, configuration_of, id_prefix, the_one
from kleiod.storage.sqlite_connection import SQLiteConnection, translated

_COLUMNS = (
    "id, status, command, created, updated, parent, owner_host, executions, branch_kind, tags"
)
_LISTED = f"SELECT {_COLUMNS} FROM trials ORDER BY created"
# Beside each trial, the configuration of its latest execution that has a capture: as
# stored apart; for an execution stored without it (by an older Kleio), cut out of the
# capture by SQLite (json_quote makes any JSON value text), or, when SQLite cannot read the
# capture (Python writes NaN and Infinity, which JSON has not), the capture whole.
_LISTED_WITH_CONFIGURATIONS = (
    f"SELECT {', '.join('t.' + c for c in _COLUMNS.split(', '))}, "
    "CASE WHEN e.configuration IS NOT NULL THEN e.configuration "
    "WHEN json_valid(e.capture) THEN json_quote(json_extract(e.capture, '$.configuration')) "
    "END, CASE WHEN e.configuration IS NOT NULL THEN NULL "
    "WHEN NOT json_valid(e.capture) THEN e.capture END "
    "FROM trials AS t LEFT JOIN executions AS e ON e.trial_id = t.id AND e.number = ("
    "SELECT MAX(number) FROM executions WHERE trial_id = t.id AND capture IS NOT NULL) "
    "ORDER BY t.created"
)


class SQLiteTrials(SQLiteConnection):
    """Querying trials, and tagging them."""

    def candidates(self, root: str) -> list[dict[str, Any]]:
        with translated("reading a trial's branches"):
            rows = self._db.execute(
                "SELECT id, status, updated, parent, branch_kind FROM trials WHERE (id = ? OR "
                "root = ?) AND (branch_kind IS NULL OR branch_kind = 'change') ORDER BY updated",
                (root, root),
            ).fetchall()
        return [
            {
                "id": i,
                "status": s,
                "updated": u,
                "parent": p,
                "branch_kind": k,
                "capture": self.capture(i),
            }
            for i, s, u, p, k in rows
        ]

    def capture(self, trial_id: str, execution: int | None = None) -> dict[str, Any] | None:
        """The capture of an execution (default: the latest that has one)."""
        with translated("reading a capture"):
            if execution is None:
                row = self._db.execute(
                    "SELECT capture FROM executions WHERE trial_id = ? AND capture IS NOT NULL "
                    "ORDER BY number DESC LIMIT 1",
                    (trial_id,),
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT capture FROM executions WHERE trial_id = ? AND number = ?",
                    (trial_id, execution),
                ).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def end_position(self, trial_id: str) -> int | None:
        """The position of the last record of the trial's own history, if any."""
        with translated("reading the end of a history"):
            row = self._db.execute(
                "SELECT chunk, count FROM chunks WHERE trial_id = ? ORDER BY chunk DESC LIMIT 1",
                (trial_id,),
            ).fetchone()
            if row is not None:
                return int(row[0] * POSITION_STRIDE + row[1] - 1)
            point = self._db.execute(
                "SELECT branch_point FROM trials WHERE id = ?", (trial_id,)
            ).fetchone()
        return None if point is None else point[0]

    def resolve_id(self, prefix: str) -> str:
        low = id_prefix(prefix)
        with translated("resolving an id"):
            rows = self._db.execute(
                "SELECT id FROM trials WHERE id >= ? AND id < ? LIMIT 2", (low, low + "g")
            ).fetchall()
        return the_one(prefix, [row[0] for row in rows])

    def list_trials(self, configurations: bool = False) -> list[dict[str, Any]]:
        with translated("listing trials"):
            rows = self._db.execute(
                _LISTED_WITH_CONFIGURATIONS if configurations else _LISTED
            ).fetchall()
        trials = [
            {
                "id": i,
                "status": s,
                "command": json.loads(c),
                "created": cr,
                "updated": u,
                "parent": p,
                "host": h,
                "executions": n,
                "branch_kind": k,
                "tags": json.loads(t) if t else [],
            }
            for i, s, c, cr, u, p, h, n, k, t, *_ in rows
        ]
        if configurations:
            for trial, row in zip(trials, rows, strict=True):
                stored, whole = row[-2:]
                trial["configuration"] = (
                    json.loads(stored)
                    if stored is not None
                    else configuration_of(json.loads(whole or "null"))
                )
        return trials

    def set_tags(self, trial_id: str, add: Sequence[str], remove: Sequence[str]) -> list[str]:
        with self._transaction(f"tagging trial {trial_id}") as db:
            row = db.execute("SELECT tags FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None:
                raise TrialNotFound(f"no trial {trial_id}")
            tags = sorted((set(json.loads(row[0]) if row[0] else []) | set(add)) - set(remove))
            db.execute("UPDATE trials SET tags = ? WHERE id = ?", (json.dumps(tags), trial_id))
        return tags

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        with translated("reading a trial"):
            row = self._db.execute(
                "SELECT id, status, command, identity, cwd, user, created, updated, parent, "
                "owner_host, owner_pid, owner_since, root, branch_kind, branch_point, tags "
                "FROM trials WHERE id = ?",
                (trial_id,),
            ).fetchone()
            if row is None:
                raise TrialNotFound(f"no trial {trial_id}")
            executions = self._db.execute(
                "SELECT number, host, pid, started, ended, exit_code, status, signals "
                "FROM executions WHERE trial_id = ? ORDER BY number",
                (trial_id,),
            ).fetchall()
            history = self._db.execute(
                "SELECT execution, status, at FROM status_history WHERE trial_id = ? "
                "ORDER BY rowid",
                (trial_id,),
            ).fetchall()
        keys = (
            "id",
            "status",
            "command",
            "identity",
            "cwd",
            "user",
            "created",
            "updated",
            "parent",
            "host",
            "pid",
            "since",
            "root",
            "branch_kind",
            "branch_point",
            "tags",
        )
        trial = dict(zip(keys, row, strict=True))
        trial["tags"] = json.loads(trial["tags"]) if trial["tags"] else []
        trial["command"] = json.loads(trial["command"])
        trial["identity"] = json.loads(trial["identity"])
        trial["executions"] = [
            {
                "number": n,
                "host": h,
                "pid": p,
                "start": s,
                "end": e,
                "exit_code": x,
                "status": st,
                "signals": json.loads(sg),
            }
            for n, h, p, s, e, x, st, sg in executions
        ]
        trial["history"] = [{"execution": e, "status": s, "at": a} for e, s, a in history]
        return trial
