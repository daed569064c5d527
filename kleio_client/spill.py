"""A producer's spill: record messages that no daemon took, kept in a file.

While no daemon answers, a producer keeps its unacknowledged messages in
memory up to ``KLEIO_BUFFER_BYTES`` (64 MiB), then moves the oldest into
files under ``<runtime dir>/spill/``: the training loop never waits.  While a
daemon takes every message but commits more slowly than the script logs, the
producer keeps only the newest few MiB in memory and the oldest in the files
too.  When a daemon answers again, the producer asks it to read the files
first (their messages come before anything still in memory) and removes each
file once the daemon has acknowledged everything in it; a file stops growing
at ``FILE_BYTES``, so that one can be removed while messages still flow.  A
producer that exits before that leaves its files: the daemon takes in every
file whose producer is gone (the producer holds a lock on its files while it
lives), in the order of their names.

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
_LENGTH = struct.Struct(">I")
_IOV_MAX = 1024  # buffers per writev on Linux
FILE_BYTES = 8 * 1024 * 1024


def directory_for(ingest_endpoint: str) -> Path:
    """The spill directory beside the daemon's sockets (``ipc://<runtime dir>/ingest.sock``)."""
    return Path(ingest_endpoint.removeprefix("ipc://")).parent / DIRECTORY


class SpillFile:
    """One producer's spill, written in order, locked while the producer lives."""

    def __init__(self, directory: Path, producer: str, number: int) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{producer}-{os.getpid()}-{number:06d}{SUFFIX}"
        # Locked before it has its name: the daemon never takes a living producer's file.
        partial = self.path.with_suffix(".part")
        # Unbuffered: frames go to the file as they are added, in one write call each time.
        self._handle: BinaryIO = open(partial, "ab", buffering=0)  # noqa: SIM115
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
        os.replace(partial, self.path)
        self.last_seq = 0  # the last record seq the file holds
        self.frames = 0
        self.size = 0

    def add(self, frames: list[tuple[int, bytes]]) -> None:
        """Append ``frames`` (each with the last record seq it holds) in one system call:
        each call releases the GIL, which a logging loop then keeps for milliseconds."""
        parts: list[bytes] = []
        for _, frame in frames:
            parts += (_LENGTH.pack(len(frame)), frame)
        _write_all(self._handle.fileno(), parts)
        self.last_seq = frames[-1][0]
        self.frames += len(frames)
        self.size += sum(map(len, parts))

    def full(self) -> bool:
        return self.size >= FILE_BYTES

    def remove(self) -> None:
        """Everything in the file was acknowledged.  Unlinked while still locked: the
        daemon never sees it unlocked, as a dead producer's."""
        self.path.unlink(missing_ok=True)
        self._handle.close()

    def close_inherited(self) -> None:
        """In a forked child: close the parent's file without unlocking it (the lock
        belongs to the open file, which the parent keeps)."""
        self._handle.close()

    def leave(self) -> None:
        """Keep the file for the daemon; release the lock so that it can take it in."""
        self._handle.close()


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order, as few at a time as the system takes (``IOV_MAX``)."""
    views = [memoryview(part) for part in parts]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        del views[:done]
        if written:
            views[0] = views[0][written:]


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
        try:
            handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        except FileNotFoundError:  # removed since listed: everything in it was taken
            continue
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()  # its producer still lives
            continue
        if os.fstat(handle.fileno()).st_nlink == 0:  # removed while we waited for it
            handle.close()
            continue
        yield path, handle
