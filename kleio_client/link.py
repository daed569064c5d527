"""The I/O thread's connection to the daemon's ingest socket.

One ZeroMQ DEALER socket, connected over ipc, with a monitor that reports each
(re)connection to a daemon, and the backlog of messages the socket did not take yet
(past its high-water mark, or while no daemon is there: ``IMMEDIATE`` queues nothing
towards an absent peer, so that messages wait in the producer's bounded window, then
its spill, rather than in an unbounded zmq pipe).  Every call that could release the GIL
is made only when it has work: each costs the I/O thread up to the switch interval
(5 ms) to take the GIL back from a logging loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import cast

import zmq

HIGH_WATER_MARK = 256  # messages queued in the socket; past it, the backlog


class Link:
    """A DEALER socket to ``endpoint``, polled with the wake pipe's reading end."""

    def __init__(self, endpoint: str, wake_reader: int) -> None:
        self._context = zmq.Context()
        self._sock = self._context.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_CONNECTED)
        self._sock.connect(endpoint)
        self._wake_reader = wake_reader
        self._poller = zmq.Poller()
        for polled in (self._sock, self._monitor, wake_reader):
            self._poller.register(polled, zmq.POLLIN)
        self._backlog: deque[bytes] = deque()

    @property
    def all_taken(self) -> bool:
        """Whether the socket took every message so far (a daemon takes them)."""
        return not self._backlog

    def send(self, frame: bytes) -> None:
        """Send ``frame`` now, or after what waits in the backlog."""
        if not self._backlog:
            try:
                self._sock.send(frame, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
        self._backlog.append(frame)

    def drain(self) -> None:
        """Send what waits in the backlog, as far as the socket takes it."""
        while self._backlog:
            try:
                self._sock.send(self._backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            self._backlog.popleft()

    def forget(self, ids: set[int]) -> None:
        """Drop these frames (by ``id``) from the backlog: they are sent another way."""
        self._backlog = deque(f for f in self._backlog if id(f) not in ids)

    def received(self) -> Iterator[bytes]:
        """The messages the daemon sent, as they are there."""
        while _readable(self._sock):
            try:
                yield self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def connections(self) -> int:
        """How many times the socket connected to a daemon since the last call."""
        count = 0
        while _readable(self._monitor):
            self._monitor.recv_multipart()
            count += 1
        return count

    def wait(self, timeout_ms: int) -> bool:
        """Wait for a message, a connection or a wake-up; whether the wake pipe has one."""
        return bool(dict(self._poller.poll(timeout_ms)).get(self._wake_reader))

    def close(self) -> None:
        self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close(0)
        self._context.term()


def _readable(sock: zmq.Socket) -> bool:
    """Whether a message waits, asked without releasing the GIL."""
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)
