"""The spill: chunks the database could not take yet, kept on local disk in commit order.

While the database is away the daemon holds records in memory up to a bound
(``hold_bytes``), then appends them here (fsynced, so they can be
acknowledged) and frees the memory.  Before anything newer is written, the
spill is replayed into the database in order and removed.  Replaying twice is
harmless: storage ignores records it has.  A daemon that stops or crashes
with a spill leaves its file; the next daemon with the same data directory
adopts every file no other live daemon holds a lock on.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import msgpack

from kleio_runtime.config import Config
from kleiod.storage.base import Appended, Chunk, Storage

log = logging.getLogger(__name__)

SUFFIX = ".spill"
REPLAY_BYTES = 32 * 1024 * 1024


def spill_directory(config: Config) -> Path:
    """Per database: a spill is only ever replayed into the database it was meant for."""
    database = hashlib.sha256(config.database.encode()).hexdigest()[:16]
    return config.data_dir / "spill" / database


class Spill:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._own: IO[bytes] | None = None
        self._adopted: list[IO[bytes]] = []
        self.records = 0  # records waiting in the spill files
        self._last: dict[tuple[str, int, str], int] = {}  # per producer, its last seq here

    # -- writing ------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Append chunks durably: they survive this process once this returns."""
        handle = self._own or self._create()
        for chunk in chunks:
            handle.write(
                msgpack.packb(
                    [
                        chunk.trial_id,
                        chunk.execution,
                        chunk.producer,
                        chunk.seq,
                        chunk.count,
                        chunk.kind,
                        chunk.body,
                    ],
                    use_bin_type=True,
                )
            )
            self.records += chunk.count
            self._note(chunk)
        handle.flush()
        os.fsync(handle.fileno())

    def _create(self) -> IO[bytes]:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._directory / f"{os.getpid()}-{time.time_ns()}{SUFFIX}"
        handle = open(path, "ab")  # noqa: SIM115 - kept open (and locked) while it holds data
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        self._own = handle
        log.warning("the database is away: spilling records to %s", path)
        return handle

    # -- adopting and replaying -------------------------------------------------------

    def adopt(self) -> None:
        """Take over the spill files of daemons that are gone."""
        if not self._directory.is_dir():
            return
        for path in sorted(self._directory.glob(f"*{SUFFIX}")):
            handle = open(path, "rb")  # noqa: SIM115 - kept open (and locked) until replayed
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # a live daemon's
                continue
            count = 0
            for chunk in _chunks(handle):
                count += chunk.count
                self._note(chunk)
            handle.seek(0)
            log.warning("adopting %d records a previous daemon spilled to %s", count, path)
            self._adopted.append(handle)
            self.records += count

    def _note(self, chunk: Chunk) -> None:
        key = (chunk.trial_id, chunk.execution, chunk.producer)
        self._last[key] = max(self._last.get(key, 0), chunk.seq + chunk.count - 1)

    def last_seq(self, trial_id: str, execution: int, producer: str) -> int:
        """The greatest seq of a producer waiting here (0 when none)."""
        return self._last.get((trial_id, execution, producer), 0)

    @property
    def pending(self) -> bool:
        return bool(self._adopted) or self._own is not None

    def replay(self, storage: Storage) -> list[Appended]:
        """Write every spilled chunk to storage, oldest first, then remove the files.
        A StorageError leaves the files as they are, for the next try."""
        results: list[Appended] = []
        for handle in [*self._adopted, *([self._own] if self._own else [])]:
            handle.flush()
            with open(handle.name, "rb") as reader:
                group: list[Chunk] = []
                size = 0
                for chunk in _chunks(reader):
                    group.append(chunk)
                    size += len(chunk.body)
                    if size >= REPLAY_BYTES:
                        results.append(storage.append_chunks(group))
                        group, size = [], 0
                if group:
                    results.append(storage.append_chunks(group))
            self._discard(handle)
        self.records = 0
        self._last.clear()
        return results

    def _discard(self, handle: IO[bytes]) -> None:
        os.unlink(handle.name)
        handle.close()
        if handle is self._own:
            self._own = None
        else:
            self._adopted.remove(handle)

    def close(self) -> None:
        """Release the files; what they hold stays for the next daemon."""
        for handle in [*self._adopted, *([self._own] if self._own else [])]:
            handle.close()
        self._adopted, self._own = [], None


def _chunks(reader: IO[bytes]) -> Iterator[Chunk]:
    """The chunks of a spill file; a torn last entry (a crash while writing) is skipped."""
    unpacker = msgpack.Unpacker(reader, raw=False, max_buffer_size=0)
    try:
        for entry in unpacker:
            trial_id, execution, producer, seq, count, kind, body = entry
            yield Chunk(trial_id, execution, producer, seq, count, kind, body)
    except (ValueError, msgpack.UnpackException) as exc:
        log.warning(
            "%s ends with a torn entry (%s); the entries before it are kept", reader.name, exc
        )
