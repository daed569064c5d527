"""Content-addressed files: artifacts stored once per sha256, beside the SQLite journal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kleiod.errors import BadRequest


class FileBlobWriter:
    """An upload in progress: bytes arrive in order into a temporary file."""

    def __init__(self, store: FileBlobStore, upload: str) -> None:
        self._store = store
        self._tmp = store.root / "tmp" / f"{upload}.part"
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self._tmp, "wb")
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, offset: int, data: bytes) -> None:
        if offset != self._size:
            raise BadRequest(f"artifact chunk at offset {offset}, expected {self._size}")
        self._handle.write(data)
        self._digest.update(data)
        self._size += len(data)

    def finish(self) -> str:
        self._handle.close()
        sha256 = self._digest.hexdigest()
        final = self._store.path(sha256)
        if final.exists():
            self._tmp.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)
        return sha256

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def begin(self, upload: str) -> FileBlobWriter:
        return FileBlobWriter(self, upload)
