"""Content-addressed files: artifacts stored once per sha256, beside the SQLite journal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kleiod.errors import BadRequest


class Spool:
    """An upload in progress: bytes arriving in order into a file, hashed as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "wb")
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, offset: int, data: bytes) -> None:
        if offset != self._size:
            raise BadRequest(f"artifact chunk at offset {offset}, expected {self._size}")
        self._handle.write(data)
        self._digest.update(data)
        self._size += len(data)

    def close(self) -> str:
        """Close the file; return the sha256 of its bytes."""
        self._handle.close()
        return self._digest.hexdigest()

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class FileBlobWriter:
    """An upload into the store: spooled beside it, then renamed to its hash."""

    def __init__(self, store: FileBlobStore, upload: str) -> None:
        self._store = store
        tmp = store.root / "tmp" / f"{upload}.part"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._spool = Spool(tmp)

    def write(self, offset: int, data: bytes) -> None:
        self._spool.write(offset, data)

    def finish(self) -> str:
        sha256 = self._spool.close()
        final = self._store.path(sha256)
        if final.exists():
            self._spool.path.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._spool.path, final)
        return sha256

    def abort(self) -> None:
        self._spool.discard()


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def begin(self, upload: str) -> FileBlobWriter:
        return FileBlobWriter(self, upload)
