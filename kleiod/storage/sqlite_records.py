"""The records of the SQLite journal: chunks appended under the fencing check, and read back.

Owns the ``chunks`` table: appending chunks of records (refused for an
execution that no longer owns its trial, and storing only the records not
stored yet, so that a resend doubles nothing), and the reads of chunks and
records by kind and position, with their counts and a producer's last seq.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from kleio_client import protocol
from kleiod.storage.base import POSITION_STRIDE, Appended, Chunk, uncovered_parts
from kleiod.storage.sqlite_connection import SQLiteConnection, translated


class SQLiteRecords(SQLiteConnection):
    """Appending and reading chunks of records."""

    def append_chunks(self, chunks: Sequence[Chunk]) -> Appended:
        inserted = 0
        refused: set[tuple[str, int]] = set()
        owners: dict[tuple[str, int], bool] = {}
        stored: list[tuple[int, Chunk]] = []
        with self._transaction(f"writing {len(chunks)} chunks of records") as db:
            for chunk in chunks:
                key = (chunk.trial_id, chunk.execution)
                if key not in owners:
                    owners[key] = self._owns(db, *key)
                if not owners[key]:
                    refused.add(key)
                    continue
                for part in self._uncovered(db, chunk):
                    cursor = db.execute(
                        "INSERT INTO chunks (trial_id, execution, producer, seq, count, kind, "
                        "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            part.trial_id,
                            part.execution,
                            part.producer,
                            part.seq,
                            part.count,
                            part.kind,
                            part.body,
                        ),
                    )
                    inserted += part.count
                    stored.append((int(cursor.lastrowid or 0) * POSITION_STRIDE, part))
        return Appended(inserted, refused, tuple(stored))

    @staticmethod
    def _owns(db: sqlite3.Connection, trial_id: str, execution: int) -> bool:
        """The fencing check: only the trial's latest execution may write."""
        row = db.execute("SELECT executions FROM trials WHERE id = ?", (trial_id,)).fetchone()
        return row is not None and row[0] == execution

    @staticmethod
    def _uncovered(db: sqlite3.Connection, chunk: Chunk) -> list[Chunk]:
        """The parts of ``chunk`` whose records are not stored yet (a resend stores nothing)."""
        last = chunk.seq + chunk.count - 1
        stored = db.execute(
            "SELECT seq, count FROM chunks WHERE trial_id = ? AND execution = ? AND producer = ? "
            "AND seq BETWEEN ? AND ? AND seq + count > ?",
            (
                chunk.trial_id,
                chunk.execution,
                chunk.producer,
                chunk.seq - protocol.MAX_RECORDS_PER_MESSAGE,
                last,
                chunk.seq,
            ),
        ).fetchall()
        return uncovered_parts(chunk, stored)

    def logged_counts(
        self, trial_id: str, kinds: Iterable[str], upto: int | None = None
    ) -> dict[int, int]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        last_chunk = None if upto is None else upto // POSITION_STRIDE
        with translated("counting records"):
            rows = self._db.execute(
                f"SELECT execution, sum(count) FROM chunks WHERE trial_id = ? AND kind IN "
                f"({marks}) AND (? IS NULL OR chunk <= ?) GROUP BY execution",
                (trial_id, *kinds, last_chunk, last_chunk),
            ).fetchall()
        return {int(e): int(n) for e, n in rows}

    def last_seq(self, trial_id: str, execution: int, producer: str) -> int:
        with translated("reading a producer's last record"):
            row = self._db.execute(
                "SELECT max(seq + count - 1) FROM chunks WHERE trial_id = ? AND execution = ? "
                "AND producer = ?",
                (trial_id, execution, producer),
            ).fetchone()
        return int(row[0] or 0)

    def read_chunks(
        self,
        trial_id: str,
        kinds: Iterable[str],
        upto: int | None = None,
        bodies: bool = True,
        positions: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        last_chunk = None if upto is None else upto // POSITION_STRIDE
        body = "body" if bodies else "NULL"
        chosen = [] if positions is None else [p // POSITION_STRIDE for p in positions]
        among = "" if positions is None else f" AND chunk IN ({','.join('?' * len(chosen))})"
        with translated("reading records"):
            rows = self._db.execute(
                f"SELECT chunk, execution, count, {body} FROM chunks WHERE trial_id = ? AND "
                f"kind IN ({marks}) AND (? IS NULL OR chunk <= ?){among}",
                (trial_id, *kinds, last_chunk, last_chunk, *chosen),
            ).fetchall()
        rows.sort(key=_chunk_number)
        return [
            {"position": c * POSITION_STRIDE, "execution": e, "count": n, "body": b}
            for c, e, n, b in rows
        ]

    def read_records(
        self, trial_id: str, kinds: Iterable[str], after: int | None = None
    ) -> list[dict[str, Any]]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        first_chunk = -1 if after is None else after // POSITION_STRIDE
        with translated("reading records"):
            rows = self._db.execute(
                "SELECT chunk, execution, producer, seq, kind, body FROM chunks "
                f"WHERE trial_id = ? AND kind IN ({marks}) AND chunk >= ?",
                (trial_id, *kinds, first_chunk),
            ).fetchall()
        rows.sort(key=_chunk_number)
        records = [
            {
                "position": chunk * POSITION_STRIDE + i,
                "execution": e,
                "producer": pr,
                "seq": seq + i,
                "kind": k,
                "body": pair[1],
            }
            for chunk, e, pr, seq, k, b in rows
            for i, pair in enumerate(msgpack.unpackb(b, raw=False))
        ]
        return records if after is None else [r for r in records if r["position"] > after]


def _chunk_number(row: tuple[Any, ...]) -> int:
    """Rows are sorted here, not by ``ORDER BY``: where the index does not give that order
    (several kinds, a list of chunks), SQLite would copy every body into a sorter first
    (ten times slower than reading them)."""
    return int(row[0])
