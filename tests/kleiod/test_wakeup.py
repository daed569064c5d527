"""A signal ends the daemon's poll at once: the wake-up socket is readable as soon as a
signal comes, whatever the poll's timeout, and is emptied for the next one."""

from __future__ import annotations

import os
import signal
import threading

import zmq

from kleiod.wakeup import signal_wakeup

LONG_MS = 60_000  # a poll this long would outlast the test's timeout without the wake-up


def test_a_signal_makes_the_poll_return_at_once():
    got: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: got.append(signum))
    try:
        with signal_wakeup() as wakeup:
            poller = zmq.Poller()
            poller.register(wakeup.fileno(), zmq.POLLIN)
            assert dict(poller.poll(0)) == {}
            os.kill(os.getpid(), signal.SIGUSR1)
            assert wakeup.fileno() in dict(poller.poll(LONG_MS))
            assert got == [signal.SIGUSR1]
            wakeup.drain()
            assert dict(poller.poll(0)) == {}  # emptied: the next poll waits again
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_outside_the_main_thread_there_is_no_wake_up_and_nothing_breaks():
    seen: list[object] = []

    def run() -> None:
        with signal_wakeup() as wakeup:
            seen.append(wakeup.fileno())
            wakeup.drain()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert seen == [None]
