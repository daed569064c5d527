"""The signal wake-up of the daemon's loop: a signal (Ctrl-C, `systemctl stop`) ends the
poll at once, instead of at its next timeout.

Python runs a signal's handler between bytecodes, and pyzmq retries a poll that a
signal interrupted, so the handler's stop flag would wait for the poll's timeout (200 ms
idle: a stop's whole latency, and a fifth of a second per daemon in the test suite).
``signal.set_wakeup_fd`` makes the interpreter write a byte to a socket as the signal
comes; the loop polls that socket beside its own.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator


class Wakeup:
    """The socket a signal writes to; ``fileno`` is polled, ``drain`` empties it."""

    def __init__(self, reader: socket.socket | None) -> None:
        self._reader = reader

    def fileno(self) -> int | None:
        return None if self._reader is None else self._reader.fileno()

    def drain(self) -> None:
        if self._reader is None:
            return
        with contextlib.suppress(BlockingIOError):
            while self._reader.recv(4096):
                pass


@contextlib.contextmanager
def signal_wakeup() -> Iterator[Wakeup]:
    """A wake-up for as long as the context lasts; none outside the main thread (where
    signals are not handled), the previous wake-up fd restored after."""
    reader, writer = socket.socketpair()
    for end in (reader, writer):
        end.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        reader.close()
        writer.close()
        yield Wakeup(None)
        return
    try:
        yield Wakeup(reader)
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
