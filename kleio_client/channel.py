"""This process's connection to the daemon's ingest socket.

The hot path (:meth:`Channel.append`) only appends to a list under a lock; a
background thread packs and sends what accumulated every ``FLUSH_INTERVAL``
seconds, or the caller does when a batch is full.  Sends never block: a frame
that the socket cannot take now waits in a local backlog, in order.  The
daemon acknowledges what it has committed; :meth:`Channel.close` waits, within
a bound, for the acknowledgement of the last record.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

import msgpack
import zmq

from kleio_client import protocol
from kleio_client.errors import DaemonUnavailable, RequestRefused

FLUSH_INTERVAL = 0.01
BATCH_RECORDS = 512
BLOB_WINDOW = 8
DEFAULT_WAIT = 30.0


def _wait_bound() -> float:
    try:
        return float(os.environ.get(protocol.ENV_FLUSH_TIMEOUT, DEFAULT_WAIT))
    except ValueError:
        return DEFAULT_WAIT


class Channel:
    """Numbered, batched, acknowledged delivery of one producer's records."""

    def __init__(self, endpoint: str, trial: str, execution: int) -> None:
        self._endpoint = endpoint
        self._trial = trial
        self._execution = execution
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._socket: zmq.Socket | None = None
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Start afresh: a new producer (also in a forked child, never reusing the parent's)."""
        self._lock = threading.Lock()
        self._socket = None
        self._producer = uuid.uuid4().hex[:16]
        self._pending: list[list[Any]] = []
        self._backlog: list[bytes] = []
        self._sent_seq = 0
        self._acked_seq = 0
        self._next_req = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._blob_acks: dict[str, dict[str, Any]] = {}

    # -- the hot path ---------------------------------------------------------

    def append(self, kind: str, body: Any) -> None:
        with self._lock:
            self._pending.append([kind, body])
            if len(self._pending) >= BATCH_RECORDS:
                self._send_pending()

    # -- sending --------------------------------------------------------------

    def _connected(self) -> zmq.Socket:
        if self._socket is None:
            context = zmq.Context()
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.connect(self._endpoint)
            self._socket = sock
            threading.Thread(target=self._flush_loop, name="kleio-flush", daemon=True).start()
        return self._socket

    def _send_pending(self) -> None:
        if self._pending:
            items, self._pending = self._pending, []
            first = self._sent_seq + 1
            self._sent_seq += len(items)
            packed = msgpack.packb(items, use_bin_type=True)
            message = protocol.records(self._trial, self._execution, self._producer, first, packed)
            self._send(protocol.pack(message))
        self._drain_backlog()

    def _send(self, frame: bytes) -> None:
        if self._backlog:
            self._backlog.append(frame)
            return
        try:
            self._connected().send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self._backlog.append(frame)

    def _drain_backlog(self) -> None:
        sock = self._connected()
        while self._backlog:
            try:
                sock.send(self._backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            self._backlog.pop(0)

    def _flush_loop(self) -> None:
        pid = os.getpid()
        while not self._closed.wait(FLUSH_INTERVAL):
            if os.getpid() != pid:
                return
            with self._lock:
                if self._socket is None:
                    return
                self._send_pending()
                self._receive()

    # -- receiving ------------------------------------------------------------

    def _receive(self) -> None:
        sock = self._connected()
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._dispatch(protocol.unpack(frame))

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == protocol.ACK:
            self._acked_seq = max(self._acked_seq, int(message["seq"]))
        elif kind == protocol.BLOB_ACK:
            self._blob_acks[message["upload"]] = message
        elif kind in (protocol.REPLY, protocol.REFUSED) and message.get("req") is not None:
            self._replies[int(message["req"])] = message
        elif kind == protocol.REFUSED:
            error = message["error"]
            print(f"kleio: the daemon refused records: {error['message']}", file=sys.stderr)

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._send_pending()
                self._receive()
                if done():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DaemonUnavailable(
                        f"kleio: the daemon did not answer within {timeout:.0f} s while {what}; "
                        "check it with `kleio daemon status`"
                    )
                self._connected().poll(min(50, int(remaining * 1000) + 1), zmq.POLLIN)

    # -- artifacts and queries --------------------------------------------------

    def upload(self, fileobj: BinaryIO) -> tuple[str, int]:
        """Stream ``fileobj`` to the daemon; return its sha256 and size once stored."""
        upload = uuid.uuid4().hex
        digest = hashlib.sha256()
        offset = 0
        chunks = 0
        while True:
            data = fileobj.read(protocol.BLOB_CHUNK_BYTES)
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("log_artifact needs a binary file object (open it with 'rb')")
            last = len(data) < protocol.BLOB_CHUNK_BYTES
            digest.update(data)
            with self._lock:
                self._send(protocol.pack(protocol.blob(upload, offset, bytes(data), last)))
                self._drain_backlog()
            offset += len(data)
            chunks += 1
            if last or chunks % BLOB_WINDOW == 0:
                self._wait_blob(upload, offset)
            if last:
                break
        stored = self._blob_acks.pop(upload)["sha256"]
        if stored != digest.hexdigest():
            raise DaemonUnavailable("kleio: the daemon stored different bytes than were sent")
        return stored, offset

    def _wait_blob(self, upload: str, offset: int) -> None:
        def acked() -> bool:
            ack = self._blob_acks.get(upload)
            return ack is not None and int(ack["offset"]) >= offset

        self._wait(acked, _wait_bound(), "storing an artifact")

    def query(self, name: str, args: dict[str, Any]) -> Any:
        """Ask the daemon about this trial, after everything logged so far is committed."""
        with self._lock:
            self._next_req += 1
            req = self._next_req
            self._send_pending()
            message = protocol.query(
                self._trial, self._execution, self._producer, req, name, args
            )
            self._send(protocol.pack(message))
        self._wait(lambda: req in self._replies, _wait_bound(), f"answering {name}")
        answer = self._replies.pop(req)
        if answer["t"] == protocol.REFUSED:
            raise RequestRefused(answer["error"]["code"], answer["error"]["message"])
        return answer.get("result")

    # -- the end ----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything, and wait within a bound for the last record's acknowledgement."""
        with self._lock:
            if self._socket is None and not self._pending:
                return
            self._send_pending()
            last = self._sent_seq
            self._send(protocol.pack(
                protocol.sync(self._trial, self._execution, self._producer, last)
            ))
        bound = _wait_bound() if timeout is None else timeout
        try:
            self._wait(lambda: self._acked_seq >= last, bound, "flushing the last records")
        except DaemonUnavailable:
            missing = last - self._acked_seq
            print(
                f"kleio: {missing} records were not acknowledged by the daemon within "
                f"{bound:.0f} s and may be lost; check `kleio daemon status`",
                file=sys.stderr,
            )

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background thread."""
        try:
            self.flush(timeout)
        finally:
            self._closed.set()
