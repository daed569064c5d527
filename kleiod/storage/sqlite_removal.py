"""Removing trials from the SQLite journal, and what its records say of artifacts.

Owns the one ``BEGIN IMMEDIATE`` transaction that removes trials with every row about
them (checked, in it, to be there, not running, and to have no branch left behind;
another daemon on the same file waits for it, so that nothing reserves, branches or
writes to them half-removed), and the hashes of the artifacts every record stored names.
"""

from __future__ import annotations

from collections.abc import Sequence

from kleio_client import protocol
from kleiod import states
from kleiod.errors import TrialNotFound
from kleiod.storage.base import (
    artifact_hashes_in,
    has_branches,
    outside_branches,
    running_trial,
)
from kleiod.storage.sqlite_connection import SQLiteConnection, translated

# Every row about a trial, by table and the column naming the trial; the trial's own last.
_ROWS = (
    ("chunks", "trial_id"),
    ("executions", "trial_id"),
    ("status_history", "trial_id"),
    ("trials", "id"),
)


class SQLiteRemoval(SQLiteConnection):
    """Removing trials; the artifacts their records name."""

    def remove_trials(self, trial_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(trial_ids))
        with self._transaction(f"removing {len(ids)} trials") as db:
            for trial_id in ids:
                row = db.execute(
                    "SELECT status, owner_host, owner_pid FROM trials WHERE id = ?", (trial_id,)
                ).fetchone()
                if row is None:
                    raise TrialNotFound(f"no trial {trial_id}")
                if row[0] == states.RUNNING:
                    raise running_trial(trial_id, row[1], row[2])
            pairs = db.execute("SELECT id, parent FROM trials WHERE parent IS NOT NULL")
            left = outside_branches(ids, pairs)
            if left is not None:
                raise has_branches(*left)
            for trial_id in ids:
                for table, column in _ROWS:
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (trial_id,))

    def artifact_hashes(self) -> set[str]:
        with translated("reading the artifacts' records"):
            rows = self._db.execute(
                "SELECT body FROM chunks WHERE kind = ?", (protocol.ARTIFACT,)
            ).fetchall()
        return artifact_hashes_in(row[0] for row in rows)
