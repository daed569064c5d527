"""Artifacts in MongoDB's GridFS: uploads spooled locally, stored once by hash, cached.

Owns the upload of an artifact (spooled to a local file while its bytes
arrive, then stored in GridFS under its sha256 unless already there) and the
local copy of a stored artifact, fetched once per daemon's cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kleiod.storage.base import missing_artifact
from kleiod.storage.blobs import Spool
from kleiod.storage.mongo_connection import MongoConnection


class MongoBlobWriter:
    """An upload in progress, spooled to a local file, stored in GridFS once complete."""

    def __init__(self, storage: MongoBlobs, upload: str) -> None:
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


class MongoBlobs(MongoConnection):
    """Storing and fetching artifacts."""

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
