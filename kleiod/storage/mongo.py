"""The shared journal: MongoDB through pymongo, artifacts in GridFS.

For a lab or a cluster: the daemons of many machines share one database.
A reservation is one ``find_one_and_update`` on the trial that also
increments its execution number; chunks of records carry a unique key on
(trial, execution, producer, seq); a chunk's commit order comes from one
atomic counter, so positions order records across machines.  Documents that
hold user keys (captures, identities: package names and file names contain
dots) are stored as JSON text, so any key round-trips.  pymongo errors are
translated to StorageError here, at the seam.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgpack
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from kleio_client import protocol
from kleiod import states
from kleiod.config import redact
from kleiod.errors import (
    StorageError,
    TrialNotFound,
)
from kleiod.storage.base import (
    POSITION_STRIDE,
    Appended,
    Chunk,
    Claim,
    ExecutionEnd,
    Reservation,
    TrialSpec,
    already_running,
    completed,
    id_prefix,
    the_one,
    uncovered_parts,
)
from kleiod.storage.blobs import Spool

SERVER_TIMEOUT_MS = 2000
RESUMABLE = sorted(states.RESUMABLE)


@contextlib.contextmanager
def _translated(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except PyMongoError as exc:
        raise StorageError(
            f"MongoDB at {redact(url)} failed while {what}: {type(exc).__name__}; check that "
            "the server runs and is reachable, and the credentials in KLEIO_DATABASE"
        ) from exc


class MongoBlobWriter:
    """An upload in progress, spooled to a local file, stored in GridFS once complete."""

    def __init__(self, storage: MongoStorage, upload: str) -> None:
        self._storage = storage
        handle, name = tempfile.mkstemp(prefix=f"kleio-{upload}-")
        os.close(handle)
        self._spool = Spool(Path(name))

    def write(self, offset: int, data: bytes) -> None:
        self._spool.write(offset, data)

    def finish(self) -> str:
        sha256 = self._spool.close()
        try:
            self._storage.store_blob(sha256, self._spool.path)
        finally:
            self._spool.path.unlink()
        return sha256

    def abort(self) -> None:
        self._spool.discard()


class MongoStorage:
    """The Storage interface over one MongoDB database."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        self.url = url
        self._cache = cache_dir
        with _translated("connecting", url):
            self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=False)
            self._db = self._client.get_default_database(default="kleio")
            self._client.admin.command("ping")
            self._ensure_indexes()
        import gridfs

        self._blobs = gridfs.GridFSBucket(self._db, bucket_name="artifacts")

    def _ensure_indexes(self) -> None:
        self._db.trials.create_index([("root", 1)])
        self._db.executions.create_index([("trial_id", 1), ("number", 1)], unique=True)
        self._db.history.create_index([("trial_id", 1), ("at", 1)])
        self._db.chunks.create_index(
            [("trial_id", 1), ("execution", 1), ("producer", 1), ("seq", 1)], unique=True)
        self._db.chunks.create_index([("trial_id", 1), ("kind", 1), ("chunk", 1)])

    def _t(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _translated(what, self.url)

    # -- trials and executions ----------------------------------------------------

    def reserve(self, spec: TrialSpec, claim: Claim,
                capture: dict[str, Any] | None = None) -> Reservation:
        with self._t(f"reserving trial {spec.id}"):
            self._create(spec, claim)
            before = self._db.trials.find_one_and_update(
                {"_id": spec.id, "$or": [
                    {"status": {"$in": RESUMABLE}},
                    {"status": states.RUNNING, "lease_until": {"$lt": claim.now}},
                ]},
                {"$set": {"status": states.RUNNING, "owner_host": claim.host,
                          "owner_pid": claim.pid, "owner_since": claim.now,
                          "lease_until": claim.lease_until, "updated": claim.now},
                 "$inc": {"executions": 1}},
                return_document=ReturnDocument.BEFORE,
            )
            if before is None:
                self._refuse(spec.id, claim)
            execution = int(before["executions"]) + 1
            previous = None if before["status"] == states.NEW and execution == 1 \
                else str(before["status"])
            if before["status"] == states.RUNNING:  # its lease had expired
                self._mark(spec.id, execution - 1, states.LOST, claim.now - 1e-6)
                previous = states.LOST
            self._db.executions.insert_one({
                "trial_id": spec.id, "number": execution, "host": claim.host, "pid": claim.pid,
                "started": claim.now, "ended": None, "exit_code": None,
                "status": states.RUNNING, "signals": [],
                "capture": None if capture is None else json.dumps(capture)})
            self._history(spec.id, execution, states.RUNNING, claim.now)
        return Reservation(spec.id, execution, previous)

    def _create(self, spec: TrialSpec, claim: Claim) -> None:
        result = self._db.trials.update_one({"_id": spec.id}, {"$setOnInsert": {
            "parent": spec.parent, "status": states.NEW, "command": spec.command,
            "identity": json.dumps(spec.identity, sort_keys=True), "cwd": spec.cwd,
            "user": spec.user, "created": claim.now, "updated": claim.now, "executions": 0,
            "owner_host": None, "owner_pid": None, "owner_since": None, "lease_until": None,
            "root": spec.root or spec.id, "branch_kind": spec.branch_kind,
            "branch_point": spec.branch_point}}, upsert=True)
        if result.upserted_id is not None:
            self._history(spec.id, 0, states.NEW, claim.now - 2e-6)

    def _refuse(self, trial_id: str, claim: Claim) -> NoReturn:
        trial = self._db.trials.find_one({"_id": trial_id}) or {}
        if trial.get("status") == states.COMPLETED:
            raise completed(trial_id)
        raise already_running(trial_id, trial.get("owner_host"), trial.get("owner_pid"),
                              trial.get("owner_since"))

    def _history(self, trial_id: str, execution: int, status: str, at: float) -> None:
        self._db.history.insert_one({"trial_id": trial_id, "execution": execution,
                                     "status": status, "at": at})

    def _mark(self, trial_id: str, execution: int, status: str, at: float) -> None:
        self._db.executions.update_one({"trial_id": trial_id, "number": execution},
                                       {"$set": {"status": status, "ended": at}})
        self._history(trial_id, execution, status, at)

    def start_execution(self, trial_id: str, execution: int, pid: int) -> None:
        with self._t("recording an execution's start"):
            self._db.executions.update_one({"trial_id": trial_id, "number": execution},
                                           {"$set": {"pid": pid}})
            self._db.trials.update_one({"_id": trial_id, "executions": execution},
                                       {"$set": {"owner_pid": pid}})

    def renew_lease(self, trial_id: str, execution: int, until: float) -> bool:
        with self._t("renewing a lease"):
            before = self._db.trials.find_one_and_update(
                {"_id": trial_id, "executions": execution,
                 "status": {"$in": [states.RUNNING, states.LOST]}},
                {"$set": {"lease_until": until, "status": states.RUNNING}},
                return_document=ReturnDocument.BEFORE)
            if before is None:
                return False
            if before["status"] == states.LOST:
                self._db.executions.update_one(
                    {"trial_id": trial_id, "number": execution},
                    {"$set": {"status": states.RUNNING, "ended": None}})
                self._history(trial_id, execution, states.RUNNING, until)
        return True

    def end_execution(self, end: ExecutionEnd) -> None:
        with self._t("recording an execution's end"):
            self._db.executions.update_one(
                {"trial_id": end.trial_id, "number": end.execution},
                {"$set": {"ended": end.now, "exit_code": end.exit_code,
                          "signals": end.signals}})
            self._db.executions.update_one(
                {"trial_id": end.trial_id, "number": end.execution,
                 "status": {"$in": [states.RUNNING, states.LOST]}},
                {"$set": {"status": end.status}})
            done = self._db.trials.update_one(
                {"_id": end.trial_id, "executions": end.execution,
                 "status": {"$in": [states.RUNNING, states.LOST]}},
                {"$set": {"status": end.status, "updated": end.now, "lease_until": None}})
            if done.modified_count:
                self._history(end.trial_id, end.execution, end.status, end.now)

    def expire_leases(self, now: float) -> list[str]:
        expired = []
        with self._t("expiring leases"):
            for trial in self._db.trials.find({"status": states.RUNNING,
                                               "lease_until": {"$lt": now}}):
                done = self._db.trials.update_one(
                    {"_id": trial["_id"], "executions": trial["executions"],
                     "status": states.RUNNING, "lease_until": {"$lt": now}},
                    {"$set": {"status": states.LOST, "updated": now, "lease_until": None}})
                if done.modified_count:
                    self._mark(trial["_id"], trial["executions"], states.LOST, now)
                    expired.append(str(trial["_id"]))
        return expired

    # -- records ------------------------------------------------------------------

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

    # -- blobs --------------------------------------------------------------------

    def begin_blob(self, upload: str) -> MongoBlobWriter:
        return MongoBlobWriter(self, upload)

    def store_blob(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under their hash, once."""
        with self._t("storing an artifact"):
            if self._db["artifacts.files"].count_documents({"filename": sha256}, limit=1):
                return
            with open(path, "rb") as handle:
                self._blobs.upload_from_stream(sha256, handle)

    def blob_path(self, sha256: str) -> str:
        """A local copy of the artifact, fetched from GridFS once per daemon's cache."""
        target = self._cache / sha256[:2] / sha256
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._t("reading an artifact"), tempfile.NamedTemporaryFile(
                    dir=target.parent, delete=False) as handle:
                self._blobs.download_to_stream_by_name(sha256, handle)
            os.replace(handle.name, target)
        return str(target)

    # -- queries ------------------------------------------------------------------

    def candidates(self, root: str) -> list[dict[str, Any]]:
        with self._t("reading a trial's branches"):
            docs = list(self._db.trials.find(
                {"$or": [{"_id": root}, {"root": root}],
                 "branch_kind": {"$in": [None, "change"]}}).sort("updated", 1))
        return [{"id": d["_id"], "status": d["status"], "updated": d["updated"],
                 "parent": d.get("parent"), "branch_kind": d.get("branch_kind"),
                 "capture": self.capture(d["_id"])} for d in docs]

    def capture(self, trial_id: str, execution: int | None = None) -> dict[str, Any] | None:
        with self._t("reading a capture"):
            if execution is None:
                doc = self._db.executions.find_one(
                    {"trial_id": trial_id, "capture": {"$ne": None}}, sort=[("number", -1)])
            else:
                doc = self._db.executions.find_one({"trial_id": trial_id, "number": execution})
        return None if doc is None or doc.get("capture") is None else dict(
            json.loads(doc["capture"]))

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
            found = [d["_id"] for d in self._db.trials.find(
                {"_id": {"$gte": low, "$lt": low + "g"}}, {"_id": 1}).limit(2)]
        return the_one(prefix, found)

    def list_trials(self) -> list[dict[str, Any]]:
        with self._t("listing trials"):
            docs = list(self._db.trials.find().sort("created", 1))
        return [{"id": d["_id"], "status": d["status"], "command": d["command"],
                 "created": d["created"], "updated": d["updated"], "parent": d.get("parent"),
                 "host": d.get("owner_host"), "executions": d["executions"],
                 "branch_kind": d.get("branch_kind"), "tags": sorted(d.get("tags") or [])}
                for d in docs]

    def set_tags(self, trial_id: str, add: Sequence[str], remove: Sequence[str]) -> list[str]:
        with self._t(f"tagging trial {trial_id}"):
            found = self._db.trials.find_one_and_update(
                {"_id": trial_id}, {"$addToSet": {"tags": {"$each": list(add)}}})
            if found is None:
                raise TrialNotFound(f"no trial {trial_id}")
            d = self._db.trials.find_one_and_update(
                {"_id": trial_id}, {"$pull": {"tags": {"$in": list(remove)}}},
                return_document=ReturnDocument.AFTER)
        return sorted((d or {}).get("tags") or [])

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        with self._t("reading a trial"):
            d = self._db.trials.find_one({"_id": trial_id})
            if d is None:
                raise TrialNotFound(f"no trial {trial_id}")
            executions = list(self._db.executions.find({"trial_id": trial_id}).sort("number", 1))
            history = list(self._db.history.find({"trial_id": trial_id}).sort("at", 1))
        return {
            "id": d["_id"], "status": d["status"], "command": d["command"],
            "identity": json.loads(d["identity"]), "cwd": d["cwd"], "user": d["user"],
            "created": d["created"], "updated": d["updated"], "parent": d.get("parent"),
            "host": d.get("owner_host"), "pid": d.get("owner_pid"),
            "since": d.get("owner_since"), "root": d.get("root"),
            "branch_kind": d.get("branch_kind"), "branch_point": d.get("branch_point"),
            "tags": sorted(d.get("tags") or []),
            "executions": [
                {"number": e["number"], "host": e["host"], "pid": e.get("pid"),
                 "start": e["started"], "end": e.get("ended"), "exit_code": e.get("exit_code"),
                 "status": e["status"], "signals": e.get("signals") or []}
                for e in executions],
            "history": [{"execution": h["execution"], "status": h["status"], "at": h["at"]}
                        for h in history],
        }

    # -- moving journals between databases --------------------------------------------

    def export_trial(self, trial_id: str) -> dict[str, Any]:
        trial = self.get_trial(trial_id)
        with self._t("exporting a trial"):
            trial["captures"] = {
                e["number"]: json.loads(e["capture"]) for e in self._db.executions.find(
                    {"trial_id": trial_id, "capture": {"$ne": None}})}
        return trial

    def export_chunks(self, trial_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        with self._t("exporting records"):
            for doc in self._db.chunks.find({"trial_id": {"$in": list(trial_ids)}}).sort(
                    "chunk", 1):
                doc.pop("_id")
                yield doc

    def chunk_number(self, trial_id: str, execution: int, producer: str, seq: int) -> int | None:
        with self._t("finding a chunk"):
            doc = self._db.chunks.find_one({"trial_id": trial_id, "execution": execution,
                                            "producer": producer, "seq": seq}, {"chunk": 1})
        return None if doc is None else int(doc["chunk"])

    def import_trial(self, trial: dict[str, Any]) -> bool:
        with self._t("importing a trial"):
            try:
                self._db.trials.insert_one({
                    "_id": trial["id"], "parent": trial["parent"], "status": trial["status"],
                    "command": trial["command"],
                    "identity": json.dumps(trial["identity"], sort_keys=True),
                    "cwd": trial["cwd"], "user": trial["user"], "created": trial["created"],
                    "updated": trial["updated"], "executions": len(trial["executions"]),
                    "owner_host": trial["host"], "owner_pid": trial["pid"],
                    "owner_since": trial["since"], "lease_until": None, "root": trial["root"],
                    "branch_kind": trial["branch_kind"], "branch_point": trial["branch_point"],
                    "tags": list(trial.get("tags") or [])})
            except DuplicateKeyError:
                return False
            captures = trial.get("captures") or {}
            for e in trial["executions"]:
                capture = captures.get(e["number"])
                self._db.executions.insert_one({
                    "trial_id": trial["id"], "number": e["number"], "host": e["host"],
                    "pid": e["pid"], "started": e["start"], "ended": e["end"],
                    "exit_code": e["exit_code"], "status": e["status"],
                    "signals": e["signals"],
                    "capture": None if capture is None else json.dumps(capture)})
            for h in trial["history"]:
                self._history(trial["id"], h["execution"], h["status"], h["at"])
        return True

    def import_chunks(self, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
        mapping: dict[int, int] = {}
        if not rows:
            return mapping
        with self._t("importing records"):
            counter = self._db.counters.find_one_and_update(
                {"_id": "chunk"}, {"$inc": {"value": len(rows)}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            first = int((counter or {})["value"]) - len(rows) + 1
            for number, row in enumerate(rows, start=first):
                try:
                    self._db.chunks.insert_one({**row, "chunk": number})
                except DuplicateKeyError:
                    continue
                mapping[row["chunk"]] = number
        return mapping

    def close(self) -> None:
        self._client.close()
