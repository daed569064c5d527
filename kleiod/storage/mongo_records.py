"""The records in MongoDB: chunks appended under the fencing check, and read back.

Owns the ``chunks`` collection: appending chunks of records (refused for an
execution that no longer owns its trial, storing only the records not stored
yet, numbered in commit order by one atomic counter so that positions order
records across machines), and the reads of chunks and records by kind and
position, with their counts and a producer's last seq.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from kleio_client import protocol
from kleiod.storage.base import POSITION_STRIDE, Appended, Chunk, uncovered_parts
from kleiod.storage.mongo_connection import MongoConnection


class MongoRecords(MongoConnection):
    """Appending and reading chunks of records."""

    def append_chunks(self, chunks: Sequence[Chunk]) -> Appended:
        inserted = 0
        refused: set[tuple[str, int]] = set()
        owners: dict[tuple[str, int], bool] = {}
        stored: list[tuple[int, Chunk]] = []
        with self._t(f"writing {len(chunks)} chunks of records"):
            parts: list[Chunk] = []
            for chunk in chunks:
                key = (chunk.trial_id, chunk.execution)
                if key not in owners:
                    owners[key] = self._db.trials.count_documents(
                        {"_id": chunk.trial_id, "executions": chunk.execution}) == 1
                if not owners[key]:
                    refused.add(key)
                    continue
                parts += self._uncovered(chunk)
            if not parts:
                return Appended(0, refused)
            counter = self._db.counters.find_one_and_update(
                {"_id": "chunk"}, {"$inc": {"value": len(parts)}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            last = int((counter or {})["value"])
            for number, part in enumerate(parts, start=int(last) - len(parts) + 1):
                try:
                    self._db.chunks.insert_one({
                        "chunk": number, "trial_id": part.trial_id, "execution": part.execution,
                        "producer": part.producer, "seq": part.seq, "count": part.count,
                        "kind": part.kind, "body": part.body})
                    inserted += part.count
                    stored.append((number * POSITION_STRIDE, part))
                except DuplicateKeyError:
                    continue  # another daemon stored the same records meanwhile
        return Appended(inserted, refused, tuple(stored))

    def _uncovered(self, chunk: Chunk) -> list[Chunk]:
        last = chunk.seq + chunk.count - 1
        stored = [(d["seq"], d["count"]) for d in self._db.chunks.find(
            {"trial_id": chunk.trial_id, "execution": chunk.execution,
             "producer": chunk.producer,
             "seq": {"$gte": chunk.seq - protocol.MAX_RECORDS_PER_MESSAGE, "$lte": last}},
            {"seq": 1, "count": 1}) if d["seq"] + d["count"] > chunk.seq]
        return uncovered_parts(chunk, stored)

    def logged_counts(self, trial_id: str, kinds: Iterable[str],
                      upto: int | None = None) -> dict[int, int]:
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
                sort=[("seq", -1)])
        return 0 if doc is None else int(doc["seq"] + doc["count"] - 1)

    def read_chunks(self, trial_id: str, kinds: Iterable[str], upto: int | None = None,
                    bodies: bool = True, positions: Sequence[int] | None = None
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
        return [{"position": d["chunk"] * POSITION_STRIDE, "execution": d["execution"],
                 "count": d["count"], "body": d.get("body")} for d in docs]

    def read_records(self, trial_id: str, kinds: Iterable[str],
                     after: int | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"trial_id": trial_id, "kind": {"$in": list(kinds)}}
        if after is not None:
            query["chunk"] = {"$gte": after // POSITION_STRIDE}
        with self._t("reading records"):
            docs = list(self._db.chunks.find(query).sort("chunk", 1))
        records = [
            {"position": d["chunk"] * POSITION_STRIDE + i, "execution": d["execution"],
             "producer": d["producer"], "seq": d["seq"] + i, "kind": d["kind"],
             "body": pair[1]}
            for d in docs
            for i, pair in enumerate(msgpack.unpackb(d["body"], raw=False))
        ]
        return records if after is None else [r for r in records if r["position"] > after]
