"""A producer's spill: record messages that no daemon took, kept in a file.

While no daemon answers, a producer keeps its unacknowledged messages in
memory up to ``KLEIO_BUFFER_BYTES`` (64 MiB), then moves the oldest into a
file under ``<runtime dir>/spill/``: the training loop never waits.  When a
daemon answers again, the producer asks it to read the file first (its
messages come before anything still in memory) and removes the file once
the daemon has acknowledged everything in it.  A producer that exits before
that leaves the file: the daemon takes in every file whose producer is gone
(the producer holds a lock on its file while it lives).

The file is a sequence of frames, each preceded by its length (4 bytes, big
endian): exactly the ``records`` messages the producer would have sent.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DIRECTORY = "spill"
SUFFIX = ".frames"
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
ENV_BUFFER_BYTES = "KLEIO_BUFFER_BYTES"
_LENGTH = struct.Struct(">I")


def buffer_bound() -> int:
    """How many bytes of unacknowledged messages a producer keeps in memory."""
    try:
        return max(0, int(os.environ.get(ENV_BUFFER_BYTES, DEFAULT_BUFFER_BYTES)))
    except ValueError:
        return DEFAULT_BUFFER_BYTES


def directory_for(ingest_endpoint: str) -> Path:
    """The spill directory beside the daemon's sockets (``ipc://<runtime dir>/ingest.sock``)."""
    return Path(ingest_endpoint.removeprefix("ipc://")).parent / DIRECTORY


class SpillFile:
    """One producer's spill, written in order, locked while the producer lives."""

    def __init__(self, directory: Path, producer: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{producer}-{os.getpid()}{SUFFIX}"
        # Locked before it has its name: the daemon never takes a living producer's file.
        partial = self.path.with_suffix(".part")
        self._handle: BinaryIO = open(partial, "ab")  # noqa: SIM115 - lives with the spill
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
        os.replace(partial, self.path)
        self.last_seq = 0  # the last record seq the file holds
        self.frames = 0

    def add(self, last_seq: int, frame: bytes) -> None:
        self._handle.write(_LENGTH.pack(len(frame)) + frame)
        self.last_seq = last_seq
        self.frames += 1

    def flush(self) -> None:
        self._handle.flush()

    def remove(self) -> None:
        """Everything in the file was acknowledged."""
        self._handle.close()
        self.path.unlink(missing_ok=True)

    def leave(self) -> None:
        """Keep the file for the daemon; release the lock so that it can take it in."""
        self._handle.flush()
        self._handle.close()


def frames(path: Path) -> Iterator[bytes]:
    """The frames of a spill file; a torn last frame (a crash while writing) is skipped."""
    with open(path, "rb") as reader:
        while True:
            head = reader.read(_LENGTH.size)
            if len(head) < _LENGTH.size:
                return
            (length,) = _LENGTH.unpack(head)
            frame = reader.read(length)
            if len(frame) < length:
                return
            yield frame


def orphans(directory: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """Spill files whose producer is gone, each locked (and opened) for the caller."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()  # its producer still lives
            continue
        yield path, handle
