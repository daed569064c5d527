"""The executions of trials in the SQLite journal: reservation, leases, ends, status history.

Owns the one ``BEGIN IMMEDIATE`` transaction that reserves a trial (creating
it if new, declaring lost an execution whose lease expired, and numbering the
new execution, the fencing token), the start of an execution, the renewal and
expiry of leases, the end of an execution, and every row of status history.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from kleiod import states
from kleiod.storage.base import (
    Claim,
    ExecutionEnd,
    Reservation,
    TrialSpec,
    already_running,
    branch_of_removed,
    combined_end,
    completed,
    participant_end,
    stored_capture,
)
from kleiod.storage.sqlite_connection import SQLiteConnection, translated


def record_status(
    db: sqlite3.Connection, trial_id: str, execution: int, status: str, at: float
) -> None:
    """One change of a trial's status, kept as history (also by an import)."""
    db.execute("INSERT INTO status_history VALUES (?, ?, ?, ?)", (trial_id, execution, status, at))


def clock(db: sqlite3.Connection) -> float:
    """SQLite's time (this machine's, to the millisecond), in seconds since the epoch."""
    return float(db.execute("SELECT (julianday('now') - 2440587.5) * 86400.0").fetchone()[0])


def _exists(db: sqlite3.Connection, trial_id: str) -> bool:
    return db.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone() is not None


def _joins(row: tuple[Any, ...], claim: Claim, now: float) -> bool:
    """Whether the claim is one more process of the launch whose execution runs."""
    status, _, _, _, _, lease_until, launch = row
    return (
        claim.launch is not None
        and launch == claim.launch
        and status == states.RUNNING
        and lease_until is not None
        and lease_until >= now
    )


class SQLiteExecutions(SQLiteConnection):
    """Reserving trials and recording their executions."""

    def reserve(
        self, spec: TrialSpec, claim: Claim, capture: dict[str, Any] | None = None
    ) -> Reservation:
        with self._transaction(f"reserving trial {spec.id}") as db:
            now = clock(db)
            row = db.execute(
                "SELECT status, executions, owner_host, owner_pid, owner_since, lease_until, "
                "owner_launch FROM trials WHERE id = ?",
                (spec.id,),
            ).fetchone()
            if row is not None and _joins(row, claim, now):
                db.execute(
                    "UPDATE executions SET participants = participants + 1 "
                    "WHERE trial_id = ? AND number = ?",
                    (spec.id, row[1]),
                )
                return Reservation(spec.id, row[1], states.RUNNING, joined=True)
            previous = None if row is None else row[0]
            if row is None and spec.parent is not None and not _exists(db, spec.parent):
                raise branch_of_removed(spec.parent)  # by `kleio rm`, since it was read
            if row is None:
                db.execute(
                    "INSERT INTO trials (id, parent, status, command, identity, cwd, user, "
                    "created, updated, root, branch_kind, branch_point) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        spec.id,
                        spec.parent,
                        states.NEW,
                        json.dumps(spec.command),
                        json.dumps(spec.identity, sort_keys=True),
                        spec.cwd,
                        spec.user,
                        now,
                        now,
                        spec.root or spec.id,
                        spec.branch_kind,
                        spec.branch_point,
                    ),
                )
                record_status(db, spec.id, 0, states.NEW, now)
                executions = 0
            else:
                executions = row[1]
                previous = self._check_reservable(db, spec.id, row, now)
            execution = executions + 1
            db.execute(
                "UPDATE trials SET status = ?, executions = ?, owner_host = ?, owner_pid = ?, "
                "owner_since = ?, lease_until = ?, updated = ?, owner_launch = ? WHERE id = ?",
                (
                    states.RUNNING,
                    execution,
                    claim.host,
                    claim.pid,
                    now,
                    now + claim.lease_seconds,
                    now,
                    claim.launch,
                    spec.id,
                ),
            )
            db.execute(
                "INSERT INTO executions (trial_id, number, host, pid, started, status, capture, "
                "configuration, launch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.id,
                    execution,
                    claim.host,
                    claim.pid,
                    now,
                    states.RUNNING,
                    *stored_capture(capture),
                    claim.launch,
                ),
            )
            record_status(db, spec.id, execution, states.RUNNING, now)
        return Reservation(spec.id, execution, previous)

    def _check_reservable(
        self, db: sqlite3.Connection, trial_id: str, row: tuple[Any, ...], now: float
    ) -> str:
        status, executions, host, pid, since, lease_until, _ = row
        if status == states.COMPLETED:
            raise completed(trial_id)
        if status == states.RUNNING:
            if lease_until is not None and lease_until >= now:
                raise already_running(trial_id, host, pid, since)
            db.execute(
                "UPDATE executions SET status = ?, ended = ? WHERE trial_id = ? AND number = ?",
                (states.LOST, now, trial_id, executions),
            )
            record_status(db, trial_id, executions, states.LOST, now)
            return states.LOST
        return str(status)

    def start_execution(self, trial_id: str, execution: int, pid: int) -> None:
        with self._transaction("recording an execution's start") as db:
            db.execute(
                "UPDATE executions SET pid = ? WHERE trial_id = ? AND number = ?",
                (pid, trial_id, execution),
            )
            db.execute(
                "UPDATE trials SET owner_pid = ? WHERE id = ? AND executions = ?",
                (pid, trial_id, execution),
            )

    def renew_lease(self, trial_id: str, execution: int, seconds: float) -> bool:
        """Renew the latest execution's lease; one declared lost while alive (a paused
        machine) runs again, as long as no other execution took the trial over."""
        with self._transaction("renewing a lease") as db:
            row = db.execute(
                "SELECT status FROM trials WHERE id = ? AND executions = ?", (trial_id, execution)
            ).fetchone()
            if row is None or row[0] not in (states.RUNNING, states.LOST):
                return False
            now = clock(db)
            db.execute(
                "UPDATE trials SET lease_until = ?, status = ? WHERE id = ?",
                (now + seconds, states.RUNNING, trial_id),
            )
            if row[0] == states.LOST:
                db.execute(
                    "UPDATE executions SET status = ?, ended = NULL "
                    "WHERE trial_id = ? AND number = ?",
                    (states.RUNNING, trial_id, execution),
                )
                record_status(db, trial_id, execution, states.RUNNING, now)
        return True

    def end_execution(self, end: ExecutionEnd) -> None:
        with self._transaction("recording an execution's end") as db:
            row = db.execute(
                "SELECT participants, ends FROM executions WHERE trial_id = ? AND number = ?",
                (end.trial_id, end.execution),
            ).fetchone()
            if row is None or (row[0] <= 0 and json.loads(row[1] or "[]")):
                return  # no such execution, or its end is recorded (a report sent again)
            now = clock(db)
            ends = [*json.loads(row[1] or "[]"), participant_end(end)]
            if row[0] > 1:  # other processes of its launch still run
                db.execute(
                    "UPDATE executions SET participants = ?, ends = ? "
                    "WHERE trial_id = ? AND number = ?",
                    (row[0] - 1, json.dumps(ends), end.trial_id, end.execution),
                )
                return
            end = combined_end(end, ends)
            db.execute(
                "UPDATE executions SET ended = ?, exit_code = ?, signals = ?, participants = 0, "
                "ends = ?, "
                "status = CASE WHEN status IN ('running', 'lost') THEN ? ELSE status END "
                "WHERE trial_id = ? AND number = ?",
                (
                    now,
                    end.exit_code,
                    json.dumps(end.signals),
                    json.dumps(ends),
                    end.status,
                    end.trial_id,
                    end.execution,
                ),
            )
            cursor = db.execute(
                "UPDATE trials SET status = ?, updated = ?, lease_until = NULL "
                "WHERE id = ? AND executions = ? AND status IN ('running', 'lost')",
                (end.status, now, end.trial_id, end.execution),
            )
            if cursor.rowcount:
                record_status(db, end.trial_id, end.execution, end.status, now)

    def clock(self) -> float:
        with translated("reading the clock"):
            return clock(self._db)

    def expire_leases(self) -> list[str]:
        with self._transaction("expiring leases") as db:
            now = clock(db)
            rows = db.execute(
                "SELECT id, executions FROM trials WHERE status = ? AND lease_until < ?",
                (states.RUNNING, now),
            ).fetchall()
            for trial_id, execution in rows:
                db.execute(
                    "UPDATE trials SET status = ?, updated = ?, lease_until = NULL WHERE id = ?",
                    (states.LOST, now, trial_id),
                )
                db.execute(
                    "UPDATE executions SET status = ?, ended = ? WHERE trial_id = ? AND number = ?",
                    (states.LOST, now, trial_id, execution),
                )
                record_status(db, trial_id, execution, states.LOST, now)
        return [row[0] for row in rows]
