"""The records in MongoDB: chunks appended under the fencing check, and read back.

Owns the ``chunks`` collection: appending chunks of records, refused for an
execution that no longer owns its trial (the check and the write are one
transaction where the deployment runs them, a replica set or a sharded cluster;
on a standalone server the check comes before the write and again after it),
storing only the records not stored yet, numbered in commit order by one atomic
counter so that positions order records across machines; and the reads of
chunks and records by kind and position, with their counts and a producer's
last seq.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError, OperationFailure

from kleio_client import protocol
from kleiod.storage.base import POSITION_STRIDE, Appended, Chunk, uncovered_parts
from kleiod.storage.mongo_connection import MongoConnection

# How long a write of records tries again while other writes conflict with it.
CONFLICTS_FOR = 10.0


def _document(number: int, part: Chunk) -> dict[str, Any]:
    return {
        "chunk": number,
        "trial_id": part.trial_id,
        "execution": part.execution,
        "producer": part.producer,
        "seq": part.seq,
        "count": part.count,
        "kind": part.kind,
        "body": part.body,
    }


class MongoRecords(MongoConnection):
    """Appending and reading chunks of records."""

    def append_chunks(self, chunks: Sequence[Chunk]) -> Appended:
        with self._t(f"writing {len(chunks)} chunks of records"):
            if not self.transactions:
                return self._append_checked(chunks)
            deadline = time.monotonic() + CONFLICTS_FOR
            for attempt in itertools.count():
                try:
                    return self._append_in_transaction(chunks)
                except OperationFailure as exc:
                    # Another daemon stored some meanwhile (see which), or a write conflict
                    # (a reservation, another daemon's records): again, after a while.
                    again = isinstance(exc, DuplicateKeyError) or exc.has_error_label(
                        "TransientTransactionError"
                    )
                    if not again or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
            raise AssertionError("unreachable")

    def _append_in_transaction(self, chunks: Sequence[Chunk]) -> Appended:
        """One try: the daemon keeps the records and retries on its own."""
        with self._transaction() as session:
            return self._append(chunks, session)

    def _append(self, chunks: Sequence[Chunk], session: ClientSession | None) -> Appended:
        """One transaction (``session``): the fencing check is a write to the trial, so
        that a reservation that takes the trial over meanwhile conflicts with it, and
        either the records are stored before the new execution starts or they are
        refused."""
        refused: set[tuple[str, int]] = set()
        owners: dict[tuple[str, int], bool] = {}
        parts: list[Chunk] = []
        # What this batch stores already, per producer: a resend may be in it twice.
        taken: dict[tuple[str, int, str], list[tuple[int, int]]] = {}
        for chunk in chunks:
            key = (chunk.trial_id, chunk.execution)
            if key not in owners:
                owners[key] = self._owns(key, session)
            if not owners[key]:
                refused.add(key)
                continue
            mine = taken.setdefault((*key, chunk.producer), [])
            new = self._uncovered(chunk, session, mine)
            mine.extend((part.seq, part.count) for part in new)
            parts += new
        if not parts:
            return Appended(0, refused)
        counter = self._db.counters.find_one_and_update(
            {"_id": "chunk"},
            {"$inc": {"value": len(parts)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        first = int((counter or {})["value"]) - len(parts) + 1
        inserted = 0
        stored: list[tuple[int, Chunk]] = []
        for number, part in enumerate(parts, start=first):
            try:
                self._db.chunks.insert_one(_document(number, part), session=session)
            except DuplicateKeyError:
                if session is not None:
                    raise  # the transaction is aborted: the caller tries again
                continue  # another daemon stored the same records meanwhile
            inserted += part.count
            stored.append((number * POSITION_STRIDE, part))
        return Appended(inserted, refused, tuple(stored))

    def _owns(self, key: tuple[str, int], session: ClientSession | None) -> bool:
        trial = {"_id": key[0], "executions": key[1]}
        if session is None:
            return self._db.trials.count_documents(trial, limit=1) == 1
        return (
            self._db.trials.update_one(
                trial, {"$inc": {"appends": 1}}, session=session
            ).matched_count
            == 1
        )

    def _append_checked(self, chunks: Sequence[Chunk]) -> Appended:
        """A standalone server runs no transaction: the check comes before the write and
        again after it, and records of an execution that lost its trial meanwhile are
        taken back (a reader may see them for that moment)."""
        appended = self._append(chunks, None)
        refused = set(appended.refused)
        stored = []
        inserted = appended.inserted
        for position, part in appended.stored:
            key = (part.trial_id, part.execution)
            if key in refused or not self._owns(key, None):
                refused.add(key)
                self._db.chunks.delete_one(
                    {
                        "trial_id": part.trial_id,
                        "execution": part.execution,
                        "producer": part.producer,
                        "seq": part.seq,
                    }
                )
                inserted -= part.count
                continue
            stored.append((position, part))
        return Appended(inserted, refused, tuple(stored))

    def _uncovered(
        self,
        chunk: Chunk,
        session: ClientSession | None = None,
        taken: Sequence[tuple[int, int]] = (),
    ) -> list[Chunk]:
        last = chunk.seq + chunk.count - 1
        stored = [t for t in taken if t[0] + t[1] > chunk.seq and t[0] <= last] + [
            (d["seq"], d["count"])
            for d in self._db.chunks.find(
                {
                    "trial_id": chunk.trial_id,
                    "execution": chunk.execution,
                    "producer": chunk.producer,
                    "seq": {"$gte": chunk.seq - protocol.MAX_RECORDS_PER_MESSAGE, "$lte": last},
                },
                {"seq": 1, "count": 1},
                session=session,
            )
            if d["seq"] + d["count"] > chunk.seq
        ]
        return uncovered_parts(chunk, stored)

    def logged_counts(
        self, trial_id: str, kinds: Iterable[str], upto: int | None = None
    ) -> dict[int, int]:
        query: dict[str, Any] = {"trial_id": trial_id, "kind": {"$in": list(kinds)}}
        if upto is not None:
            query["chunk"] = {"$lte": upto // POSITION_STRIDE}
        counts: dict[int, int] = {}
        with self._t("counting records"):
            for doc in self._db.chunks.find(query, {"execution": 1, "count": 1}):
                counts[doc["execution"]] = counts.get(doc["execution"], 0) + doc["count"]
        return counts

    def last_seq(self, trial_id: str, execution: int, producer: str) -> int:
        with self._t("reading a producer's last record"):
            doc = self._db.chunks.find_one(
                {"trial_id": trial_id, "execution": execution, "producer": producer},
                sort=[("seq", -1)],
            )
        return 0 if doc is None else int(doc["seq"] + doc["count"] - 1)

    def read_chunks(
        self,
        trial_id: str,
        kinds: Iterable[str],
        upto: int | None = None,
        bodies: bool = True,
        positions: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"trial_id": trial_id, "kind": {"$in": list(kinds)}}
        chunk: dict[str, Any] = {}
        if upto is not None:
            chunk["$lte"] = upto // POSITION_STRIDE
        if positions is not None:
            chunk["$in"] = [p // POSITION_STRIDE for p in positions]
        if chunk:
            query["chunk"] = chunk
        fields = {"chunk": 1, "execution": 1, "count": 1, **({"body": 1} if bodies else {})}
        with self._t("reading records"):
            docs = list(self._db.chunks.find(query, fields).sort("chunk", 1))
        return [
            {
                "position": d["chunk"] * POSITION_STRIDE,
                "execution": d["execution"],
                "count": d["count"],
                "body": d.get("body"),
            }
            for d in docs
        ]

    def read_records(
        self, trial_id: str, kinds: Iterable[str], after: int | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"trial_id": trial_id, "kind": {"$in": list(kinds)}}
        if after is not None:
            query["chunk"] = {"$gte": after // POSITION_STRIDE}
        with self._t("reading records"):
            docs = list(self._db.chunks.find(query).sort("chunk", 1))
        records = [
            {
                "position": d["chunk"] * POSITION_STRIDE + i,
                "execution": d["execution"],
                "producer": d["producer"],
                "seq": d["seq"] + i,
                "kind": d["kind"],
                "body": pair[1],
            }
            for d in docs
            for i, pair in enumerate(msgpack.unpackb(d["body"], raw=False))
        ]
        return records if after is None else [r for r in records if r["position"] > after]
