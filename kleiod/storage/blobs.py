"""Content-addressed files: artifacts stored once per sha256, beside the SQLite journal.

A file's modification time is when its bytes were last stored: an upload of bytes
already there replaces the file all the same (one rename), so that `kleio gc` never
takes bytes that a trial has just uploaded and is about to record (``delete``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from pathlib import Path

from kleiod.errors import BadRequest
from kleiod.storage.base import Blob, Leftovers

_SHA256 = re.compile(r"[0-9a-f]{64}")


SPOOL_SUFFIX = ".part"  # an upload in progress, or one cut short
ASIDE_SUFFIX = ".gc"  # bytes a deletion moved aside: deleted next, or put back


def spool_path(folder: Path, upload: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{upload}{SPOOL_SUFFIX}"


def sweep_spools(folder: Path, before: float, dry_run: bool) -> Leftovers:
    """Delete the spools in ``folder`` last written before ``before``: uploads cut short
    (a spool being written is newer, whatever the grace period)."""
    found = Leftovers()
    for path in folder.glob(f"*{SPOOL_SUFFIX}"):
        try:
            stat = path.stat()
            if stat.st_mtime >= before:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:  # finished or discarded meanwhile
            continue
        found += Leftovers(1, stat.st_size)
    return found


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
        self._spool = Spool(spool_path(store.root / "tmp", upload))

    def write(self, offset: int, data: bytes) -> None:
        self._spool.write(offset, data)

    def finish(self) -> str:
        sha256 = self._spool.close()
        final = self._store.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()  # the SQLite journal's clock is this machine's
        os.utime(self._spool.path, (now, now))
        os.replace(self._spool.path, final)  # the same bytes: a reader keeps its file
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

    def blobs(self) -> list[Blob]:
        """The stored files (not the uploads in progress, under ``tmp``)."""
        found = []
        for folder in sorted(f for f in self.root.glob("??") if f.is_dir()):
            for path in sorted(folder.iterdir()):
                if not (_SHA256.fullmatch(path.name) and path.name[:2] == folder.name):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                found.append(Blob(path.name, stat.st_size, stat.st_mtime))
        return found

    def delete(self, sha256: str, stored_before: float) -> int | None:
        """Delete the file unless stored at or after ``stored_before``; the bytes freed.

        The file is first moved aside (atomic), then judged: an upload that stored the
        same bytes before the move made it new (kept, moved back), one after it made a new
        file; either way no upload finds its bytes gone."""
        path = self.path(sha256)
        aside = self.root / "tmp" / f"{sha256}.{uuid.uuid4().hex}{ASIDE_SUFFIX}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return None
        stat = aside.stat()
        if stat.st_mtime >= stored_before:
            os.replace(aside, path)  # the same bytes, whichever file is there now
            return None
        aside.unlink()
        return stat.st_size

    def sweep(self, before: float, dry_run: bool) -> Leftovers:
        """Uploads cut short, and bytes a deletion cut short moved aside: put back where
        nothing is (a link: never over bytes stored since), else deleted."""
        folder = self.root / "tmp"
        found = sweep_spools(folder, before, dry_run)
        for aside in folder.glob(f"*{ASIDE_SUFFIX}"):
            sha256 = aside.name.split(".", 1)[0]
            if dry_run or not _SHA256.fullmatch(sha256):
                continue
            try:
                size = aside.stat().st_size
                self.path(sha256).parent.mkdir(parents=True, exist_ok=True)
                os.link(aside, self.path(sha256))
            except FileExistsError:  # stored again meanwhile: these bytes are a copy
                found += Leftovers(1, size)
            except FileNotFoundError:  # the deletion went on: it is gone or back already
                continue
            aside.unlink(missing_ok=True)
        return found
