"""Artifacts in MongoDB's GridFS: uploads spooled locally, stored once by hash, cached.

Owns the upload of an artifact (spooled to a local file while its bytes
arrive, then stored in GridFS under its sha256 unless already there), the
local copy of a stored artifact, fetched once per daemon's cache, and the
deletion of stored bytes.  Each GridFS file keeps, in ``metadata.stored``, when
(on the server's clock) its bytes were last stored: an upload of bytes already
there sets it again, so that `kleio gc`, in any daemon, never takes bytes that a
trial has just uploaded and is about to record (``delete_blob``).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

from kleiod.storage.base import Blob, Leftovers, missing_artifact
from kleiod.storage.blobs import Spool, spool_path, sweep_spools
from kleiod.storage.mongo_connection import MongoConnection


def _stored_before(moment: float) -> dict[str, Any]:
    """The GridFS files last stored before ``moment``; those of an older Kleio, which
    kept no time of their own, by their upload date."""
    uploaded = datetime.datetime.fromtimestamp(moment, tz=datetime.timezone.utc)
    return {
        "$or": [
            {"metadata.stored": {"$lt": moment}},
            {
                "metadata.stored": {"$exists": False},
                "uploadDate": {"$lt": uploaded.replace(tzinfo=None)},
            },
        ]
    }


def _stored(doc: dict[str, Any]) -> float:
    stored = (doc.get("metadata") or {}).get("stored")
    if stored is not None:
        return float(stored)
    uploaded: datetime.datetime = doc["uploadDate"]
    return uploaded.replace(tzinfo=datetime.timezone.utc).timestamp()


class MongoBlobWriter:
    """An upload in progress, spooled to a local file, stored in GridFS once complete."""

    def __init__(self, storage: MongoBlobs, upload: str) -> None:
        self._storage = storage
        self._spool = Spool(spool_path(storage.spool_folder, upload))

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


class MongoBlobs(MongoConnection):
    """Storing and fetching artifacts."""

    @property
    def spool_folder(self) -> Path:
        """Where this machine spools uploads before they go to GridFS."""
        return self._cache / "tmp"

    def begin_blob(self, upload: str) -> MongoBlobWriter:
        return MongoBlobWriter(self, upload)

    def store_blob(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under their hash, once; stored again, they are new.
        Bytes that `kleio gc` deleted meanwhile are matched no more: uploaded anew."""
        files = self._db["artifacts.files"]
        with self._t("storing an artifact"):
            again = files.update_many(
                {"filename": sha256}, {"$max": {"metadata.stored": self.clock()}}
            )
            if again.matched_count:
                return
            with open(path, "rb") as handle:
                stored = self._blobs.upload_from_stream(
                    sha256, handle, metadata={"stored": self.clock()}
                )
            # New as of now, however long the upload took.
            files.update_one({"_id": stored}, {"$max": {"metadata.stored": self.clock()}})

    def blob_path(self, sha256: str) -> str:
        """A local copy of the artifact, fetched from GridFS once per daemon's cache."""
        target = self._cache / sha256[:2] / sha256
        if target.exists():
            return str(target)
        with self._t("reading an artifact"):
            if not self._db["artifacts.files"].count_documents({"filename": sha256}, limit=1):
                raise missing_artifact(sha256, "GridFS")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            try:
                with self._t("reading an artifact"):
                    self._blobs.download_to_stream_by_name(sha256, handle)
            except BaseException:
                os.unlink(handle.name)
                raise
        os.replace(handle.name, target)
        return str(target)

    def list_blobs(self) -> list[Blob]:
        found: dict[str, Blob] = {}
        with self._t("listing artifacts"):
            docs = list(
                self._db["artifacts.files"].find(
                    {}, {"filename": 1, "length": 1, "metadata.stored": 1, "uploadDate": 1}
                )
            )
        for doc in docs:  # the same bytes, uploaded by two daemons at once, are two files
            sha256, seen = str(doc["filename"]), found.get(str(doc["filename"]))
            stored = max(_stored(doc), seen.stored if seen else float("-inf"))
            found[sha256] = Blob(sha256, int(doc["length"]), stored)
        return sorted(found.values(), key=lambda blob: blob.sha256)

    def delete_blob(self, sha256: str, stored_before: float) -> int | None:
        """Each file of those bytes goes in one conditional delete: one stored again by
        another daemon meanwhile stays; its chunks go once no file names them."""
        files, freed = self._db["artifacts.files"], None
        with self._t("deleting an artifact"):
            for doc in files.find({"filename": sha256}, {"length": 1}):
                old = {"_id": doc["_id"], **_stored_before(stored_before)}
                if files.delete_one(old).deleted_count:
                    self._db["artifacts.chunks"].delete_many({"files_id": doc["_id"]})
                    freed = (freed or 0) + int(doc["length"])
            if freed is not None and not files.count_documents({"filename": sha256}, limit=1):
                (self._cache / sha256[:2] / sha256).unlink(missing_ok=True)
        return freed

    def sweep_leftovers(self, before: float, dry_run: bool = False) -> Leftovers:
        """This machine's spools cut short, and GridFS chunks no file names (an upload cut
        short before its file was written, a deletion before its chunks went) whose
        newest chunk was written before ``before``: an upload in progress writes newer."""
        found = sweep_spools(self.spool_folder, before, dry_run)
        chunks = self._db["artifacts.chunks"]
        with self._t("sweeping artifacts' leftovers"):
            named = set(self._db["artifacts.files"].distinct("_id"))
            for files_id in set(chunks.distinct("files_id")) - named:
                newest = chunks.find_one({"files_id": files_id}, {"_id": 1}, sort=[("_id", -1)])
                if newest is None or newest["_id"].generation_time.timestamp() >= before:
                    continue
                sizes = [len(d["data"]) for d in chunks.find({"files_id": files_id}, {"data": 1})]
                if not dry_run:
                    chunks.delete_many({"files_id": files_id})
                found += Leftovers(1, sum(sizes))
        return found
