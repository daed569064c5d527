"""Giving memory back to the system after a burst.

Under a flood of records the daemon's heap grows (zmq's receive queue, the batches
being written); glibc's malloc keeps the freed pages in its arenas, so a daemon that
served one burst would hold that peak for the rest of its life.  Once the burst is
over, ``malloc_trim`` returns whole free pages of every arena.  Elsewhere (musl, macOS)
this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

BURST_RECORDS = 1_000_000  # committed since the last trim, for a trim to be worth it


def _trim_function() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class Trimmer:
    """Trims once the daemon has nothing to do after a burst."""

    def __init__(self) -> None:
        self._trim = _trim_function()
        self._trimmed_at = 0  # records committed at the last trim

    def idle(self, committed: int) -> None:
        """The daemon waited for work in vain; ``committed``: records committed so far."""
        if self._trim is None or committed - self._trimmed_at < BURST_RECORDS:
            return
        self._trimmed_at = committed
        self._trim(0)
        log.debug("gave freed memory back to the system after %d records", committed)
