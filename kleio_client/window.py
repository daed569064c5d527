"""A producer's acknowledgement window: what it sent and the daemon has not committed.

Each records message stays here, with the last record seq it holds, until the daemon
acknowledges that seq: a daemon that restarts or crashes is sent again everything
still here.  The window keeps its newest messages in memory and moves the oldest to
spill files (``spill.py``) past two bounds: ``RESIDENT_BYTES`` while a daemon takes
every message but commits more slowly than the script logs (the script's memory stays
small), the buffer bound (``KLEIO_BUFFER_BYTES``) while no daemon takes them.  What is
left at the end stays in the files, for the next daemon.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from kleio_client.spill import SpillFile

# Sent and unacknowledged, kept in memory while a daemon takes every message (past it, in
# the spill files until acknowledged); while none does, up to KLEIO_BUFFER_BYTES.
RESIDENT_BYTES = 1024 * 1024


class Window:
    """Unacknowledged records messages, the newest in memory, the oldest in spill files."""

    def __init__(self, directory: Path, producer: str, buffer_bound: int) -> None:
        self._directory = directory
        self._producer = producer
        self._bound = buffer_bound
        self._frames: deque[tuple[int, bytes]] = deque()  # (last seq, frame), oldest first
        self._bytes = 0
        self._spills: deque[SpillFile] = deque()  # oldest file first
        self._numbers = itertools.count()
        self.left_in_spill: str | None = None  # where the end left what was not acknowledged

    @property
    def waiting(self) -> bool:
        """Whether anything sent waits for its acknowledgement."""
        return bool(self._frames or self._spills)

    def frames(self) -> Iterator[bytes]:
        """The messages kept in memory, oldest first (to send again)."""
        return (frame for _, frame in self._frames)

    def spill_paths(self) -> Iterator[Path]:
        """The spill files, oldest first (for the daemon to read before the rest)."""
        return (spilled.path for spilled in self._spills)

    def add(self, last_seq: int, frame: bytes, all_taken: bool) -> set[int]:
        """Keep a message just sent; ``all_taken`` when the daemon took every message so
        far.  The ids of the messages moved to the spill meanwhile (sent from there)."""
        self._frames.append((last_seq, frame))
        self._bytes += len(frame)
        if self._bytes > self._bound:
            return self._spill_oldest(self._bound // 2)
        if self._bytes > RESIDENT_BYTES and all_taken:
            # The daemon took every message and commits slower than the script logs: the
            # oldest wait for their acknowledgement on disk, not in the script's memory.
            return self._spill_oldest(RESIDENT_BYTES // 2)
        return set()

    def acknowledged(self, seq: int) -> None:
        """The daemon committed every record up to ``seq``."""
        while self._frames and self._frames[0][0] <= seq:
            self._bytes -= len(self._frames.popleft()[1])
        while self._spills and self._spills[0].last_seq <= seq:
            self._spills.popleft().remove()  # the daemon has everything it held

    def _spill_oldest(self, keep: int) -> set[int]:
        """Move the oldest messages to the spill file until ``keep`` bytes are left in
        memory: no daemon takes them now, and memory stays bounded."""
        moved: list[tuple[int, bytes]] = []
        while self._frames and self._bytes > keep:
            moved.append(self._frames.popleft())
            self._bytes -= len(moved[-1][1])
        if not moved:
            return set()
        if not self._spills or self._spills[-1].full():
            self._spills.append(SpillFile(self._directory, self._producer, next(self._numbers)))
        self._spills[-1].add(moved)
        return {id(frame) for _, frame in moved}

    def leave(self) -> None:
        """At the end, what no daemon acknowledged goes to the spill, for the daemon."""
        if not self.waiting:
            return
        self._spill_oldest(0)
        for spilled in self._spills:
            spilled.leave()
        self.left_in_spill = (
            str(self._spills[0].path)
            if len(self._spills) == 1
            else f"{len(self._spills)} files of {self._directory}"
        )

    def close_inherited(self) -> None:
        """In a forked child: the parent's files, closed and still locked for it."""
        for spilled in self._spills:
            spilled.close_inherited()
