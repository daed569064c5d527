"""How the client treats the script's signals: its thread takes none, SIGTERM flushes,
SIGINT and SIGTERM are journaled.

The client's I/O thread starts with every signal blocked, as libzmq's threads do: a
signal sent to the process then lands on a thread of the script, never on Kleio's,
where Python would only note it for the main thread (a Ctrl-C could wait until a
``time.sleep`` ends).

A script that left SIGTERM at its default disposition dies of it at once; under
Kleio it first flushes (waits, within the flush bound, for the daemon's last
acknowledgement), then dies of it all the same, so that whoever waits for it (a pool,
the supervisor) sees the same death.  Python runs a handler in the main thread only,
between two bytecodes: a main thread that took the signal just before it blocked (in
a lock, on a pipe) never runs it, and a process that the default disposition would
have ended hangs there; a pool worker terminated while it waits for a task did, once
in thirty runs on a loaded machine.  So the I/O thread's wake pipe is also the
signals' wakeup fd (``signal.set_wakeup_fd``): the I/O thread sees each SIGTERM, and
while the handler has not started it sends the signal again to the main thread
(``pthread_kill``), whose blocking call then returns to run the handler.

The same pipe shows which signals the process received: a SIGINT or SIGTERM is
journaled (``protocol.SIGNAL``), so that a launcher or a shell that exits 130 or 143
after its child died of one is known to have been interrupted.

A forked child inherits that wakeup fd and the handler: a SIGTERM sent to it before
it has a wake pipe of its own would write to its parent's, whose I/O thread would
then take it for the parent's and nudge the parent to death (a pool whose worker was
terminated as it started did, in CI).  So a fork holds every signal from just before
it until the child has its own pipe and the default SIGTERM again; a signal sent in
between comes after, to the process it was sent to.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

# Sent again to a main thread that has not started the handler this long after it came.
NUDGE_AFTER = 0.1
JOURNALED = (signal.SIGINT, signal.SIGTERM)


def start_without_signals(thread: threading.Thread) -> None:
    """Start ``thread`` with every signal blocked in it (it inherits this thread's mask
    while it starts, so that no signal lands on it before it could block them)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class SignalWatch:
    """The SIGTERM handler of a script that left the default (flush, then die of it),
    and the watch that the I/O thread keeps over it and over the signals received."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._journaled: set[int] = set()
        self._started = False
        self._came_at: float | None = None
        self._nudged_at = 0.0
        self.handler = self._terminate  # one object: `getsignal() is handler` holds
        self._held = threading.local()  # the forking thread's mask, to give back
        # Registered after the channel's: its child hook (a pipe of the child's own) runs
        # before this one's, both while signals are held.
        os.register_at_fork(
            before=self._hold, after_in_parent=self._release, after_in_child=self._disarm_in_child
        )

    def arm(self, wakeup_fd: int) -> None:
        """In the main thread (Python's rule for both): ``wakeup_fd`` becomes the signals'
        wakeup fd unless the script set one, and the handler becomes SIGTERM's if SIGTERM
        has its default disposition."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)
        if previous not in (-1, wakeup_fd):  # the script's own (an event loop's): kept
            signal.set_wakeup_fd(previous)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self.handler)

    def _terminate(self, signum: int, _frame: Any) -> None:
        if self._started:  # a nudge that came while it runs
            return
        self._started = True
        self._flush()  # the I/O thread journals the SIGTERM first: it is in the wake pipe
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def watch(self, woken: bytes) -> list[str]:
        """Called by the I/O thread at each turn with what its wake pipe held (a byte per
        signal, as ``set_wakeup_fd`` writes them): the names of the signals to journal
        (SIGINT and SIGTERM, once each).  A SIGTERM whose handler has not started within
        ``NUDGE_AFTER`` is sent again to the main thread, every ``NUDGE_AFTER``, until it
        starts."""
        fresh = [
            signum for signum in JOURNALED if signum in woken and signum not in self._journaled
        ]
        self._journaled.update(fresh)
        self._nudge(woken)
        return [signal.Signals(signum).name for signum in fresh]

    def _nudge(self, woken: bytes) -> None:
        if self._started:
            return
        now = time.monotonic()
        if signal.SIGTERM in woken and self._came_at is None:
            self._came_at = now
        if self._came_at is None or now - max(self._came_at, self._nudged_at) < NUDGE_AFTER:
            return
        if signal.getsignal(signal.SIGTERM) is not self.handler:  # the script's own now
            self._came_at = None
            return
        self._nudged_at = now
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGTERM)

    def _hold(self) -> None:
        self._held.mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())

    def _release(self) -> None:
        mask = getattr(self._held, "mask", None)
        if mask is not None:
            self._held.mask = None
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _disarm_in_child(self) -> None:
        """A forked child has nothing to flush until it logs, and no I/O thread to watch
        over the handler: SIGTERM ends it at once, as it would without Kleio, until its
        first record arms the handler again (``Channel``)."""
        self._journaled = set()
        self._started = False
        self._came_at = None
        self._nudged_at = 0.0
        if signal.getsignal(signal.SIGTERM) is self.handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._release()
