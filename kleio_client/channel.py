"""This process's connection to the daemon's ingest socket.

The hot path is one ``list.append`` of a packed statistic (:attr:`Channel.append`).
A background I/O thread owns the socket: every ``FLUSH_INTERVAL`` it takes what
the list holds, joins it into numbered batches and sends them, runs the commands the caller
queued (sync, blob chunks, queries) and records what the daemon answered.
The caller waits for answers by polling plain attributes, never by taking a
lock, so a signal handler in the main thread (SIGTERM, Ctrl-C) can flush
without deadlocking on a lock the interrupted code holds.  After a fork the
child starts a new producer with its own socket and thread.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import msgpack
import zmq

from kleio_client import protocol, spill
from kleio_client.errors import DaemonUnavailable, RequestRefused
from kleio_client.signals import SignalWatch, start_without_signals
from kleio_client.spill import SpillFile
from kleio_client.values import not_text

FLUSH_INTERVAL = 0.01
# Records per message, at most 65535 (a msgpack array16).  Each send releases the GIL,
# which a logging loop may then keep for the switch interval (5 ms): fewer records per
# message and the I/O thread falls behind a fast loop; more, and the messages' memory
# varies more from one turn to the next (and fragments).
BATCH_RECORDS = 8192
MAX_BATCH_BYTES = protocol.MAX_MESSAGE_BYTES // 4
# Sent and unacknowledged, kept in memory while a daemon takes every message (past it, in
# the spill files until acknowledged); while none does, up to KLEIO_BUFFER_BYTES.
RESIDENT_BYTES = 1024 * 1024
# Records queued for the I/O thread past which the logging thread wakes it and hands it the
# GIL (``catch_up``): about 4 ms of the fastest loop, 0.4 MiB of the script's memory.
QUEUE_RECORDS = 4096
CATCH_UP_WAIT = 0.05
BLOB_WINDOW = 8
DEFAULT_WAIT = 30.0
WAIT_STEP = 0.001
RESEND_AFTER = 10.0
UPLOAD_TRIES = 3
CLOSE_JOIN = 5.0  # time for the I/O thread to leave a spill at exit

Command = Callable[[zmq.Socket], None]


_ARRAY16 = b"\xdc"
_BIN32 = b"\xc6"
_EMPTY_RECORDS = msgpack.packb("records") + msgpack.packb(b"", use_bin_type=True)  # last
# A packed record is [kind, body]: a fixed 2-array header and the packed kind, then the body.
PREFIXES = {kind: b"\x92" + msgpack.packb(kind) for kind in (
    protocol.STATISTIC, protocol.ARTIFACT, protocol.OUTPUT, protocol.RESOURCE, protocol.SIGNAL)}
_STATISTIC = PREFIXES[protocol.STATISTIC]
MAX_RECORD_BYTES = MAX_BATCH_BYTES - 64

# What waits for the I/O thread: a statistic's packed body (the hot path: no prefix, no
# tuple), or another kind's (prefix, body) pair, which makes the batch's join fail over to
# framing its records one by one.
Pending = bytes | tuple[bytes, bytes]


class _UploadLost(Exception):
    """The daemon lost an upload in progress (it restarted): it must start again."""


def flush_bound() -> float:
    """How long to wait for the daemon's acknowledgements (KLEIO_FLUSH_TIMEOUT)."""
    try:
        return float(os.environ.get(protocol.ENV_FLUSH_TIMEOUT, DEFAULT_WAIT))
    except ValueError:
        return DEFAULT_WAIT


class Channel:
    """Numbered, batched, acknowledged delivery of one producer's records."""

    def __init__(self, endpoint: str, trial: str, execution: int) -> None:
        self._endpoint = endpoint
        self._spill_directory = spill.directory_for(endpoint)
        self._buffer_bound = spill.buffer_bound()
        self._trial = trial
        self._execution = execution
        self._wake = _pipe()
        # The logger's watch over the script's signals, kept by the I/O thread (signals.py).
        self.signals: SignalWatch | None = None
        self._reset()
        self._ensure_running()
        os.register_at_fork(after_in_child=self._reset_in_child)

    def _reset(self) -> None:
        """A new producer: fresh numbering and queues; its I/O thread starts on first use."""
        self.pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
        self._producer = os.urandom(8).hex()
        # Records packed at the call: bytes, which the cyclic garbage collector never scans
        # (a million dicts would make it crawl).  Appended by any thread, taken in slices by
        # the I/O thread: each step is one operation on the list, atomic under the GIL.
        self._pending: list[Pending] = []
        self.queued = self._pending  # read by the hot path, to call catch_up
        self._stuck_at = -1  # the I/O thread's _sent_seq when catch_up last timed out
        self.append: Callable[[Pending], None] = self._pending.append
        self._commands: deque[Command] = deque()
        self._backlog: deque[bytes] = deque()
        # Sent and not yet acknowledged: (last seq, frame), resent to a restarted daemon.
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._unacked_bytes = 0
        # The oldest unacknowledged, past the bounds, oldest file first.
        self._spills: deque[SpillFile] = deque()
        self._spill_numbers = itertools.count()
        self.left_in_spill: str | None = None  # where unacknowledged records were left
        self._queries: dict[int, bytes] = {}  # asked and not yet answered
        self._progress_at = time.monotonic()
        self._ever_connected = False
        self._reconnections = 0
        self._sent_seq = 0
        self._acked_seq = 0
        self._requests = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._blob_acks: dict[str, dict[str, Any]] = {}
        self._said_refused = False
        self._aborted = False
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def record(self, kind: str, body: Any) -> None:
        """Queue one record (checked by the caller); refused here when over the size limit."""
        try:
            packed = self.pack(body)
        except UnicodeEncodeError as exc:
            raise not_text(body, exc) from None
        if len(packed) > MAX_RECORD_BYTES:
            raise ValueError(f"cannot log a {kind} record of {len(packed)} bytes: the limit is "
                             f"{MAX_RECORD_BYTES}; store large data as an artifact")
        self.append(packed if kind == protocol.STATISTIC else (PREFIXES[kind], packed))

    def catch_up(self) -> None:
        """Called by a logging thread that queued over ``QUEUE_RECORDS``: the I/O thread
        is behind, because each time it releases the GIL (to send, to write) a busy loop
        keeps it for the switch interval (5 ms).  Sleeping hands it the GIL at once, until
        it has taken the queue or for ``CATCH_UP_WAIT`` at most: what the script's memory
        holds stays bounded, whatever the thread scheduling.  An I/O thread that took
        nothing meanwhile is stuck (a stalled disk): no record waits for it again until
        it has taken some, so a stall costs the loop one wait, and the queue grows."""
        thread = self._thread
        if (thread is None or not thread.is_alive() or self._closed
                or self._stuck_at == self._sent_seq or thread.ident == threading.get_ident()):
            return
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is already there
            os.write(self._wake[1], b"\0")  # out of its poll, if it waits there
        deadline = time.monotonic() + CATCH_UP_WAIT
        while len(self._pending) > QUEUE_RECORDS // 2:
            if time.monotonic() >= deadline:
                self._stuck_at = self._sent_seq
                return
            time.sleep(WAIT_STEP / 10)

    def _ensure_running(self) -> None:
        """Start the I/O thread, and flush at a multiprocessing child's exit (past atexit)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._io_loop, name="kleio-io", daemon=True)
        start_without_signals(self._thread)
        if "multiprocessing" in sys.modules:
            import multiprocessing
            from multiprocessing import util

            if multiprocessing.parent_process() is not None:
                util.Finalize(self, self.close, exitpriority=100)

    @property
    def wake_fd(self) -> int:
        """The writing end of the I/O thread's wake pipe (also the signals' wakeup fd)."""
        return self._wake[1]

    def _reset_in_child(self) -> None:
        """After a fork: state only. No thread yet: a child that only execs (subprocess)
        must not run libzmq, and a multiprocessing child's finalizers are registered
        after its bootstrap clears the inherited ones, at its first record.  The wake
        pipe is the child's own under the parent's numbers (the signals' wakeup fd may
        name them); the parent's spill files are closed here, still locked for it."""
        reader, writer = _pipe()
        for new, inherited in zip((reader, writer), self._wake, strict=True):
            os.dup2(new, inherited, inheritable=False)
            os.close(new)
        for spilled in self._spills:
            spilled.close_inherited()
        self._reset()
        self.append = self._first_append

    def _first_append(self, item: Pending) -> None:
        self.append = self._pending.append
        self._ensure_running()
        if self.signals is not None:
            self.signals.arm(self.wake_fd)
        self.append(item)

    def _append_after_close(self, item: Pending) -> None:
        """A record logged after the exit flush (a late atexit handler, a __del__): sent
        and acknowledged at once, since no later flush will come."""
        self._pending.append(item)
        self._closed = False
        self.flush(timeout=5.0)
        self._closed = True

    # -- the I/O thread -----------------------------------------------------------

    def _io_loop(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 256)  # past it, the bounded buffer (then the spill)
        # Queue only towards a daemon that is there: while none is, messages wait in
        # this process's bounded buffer (then its spill), not in an unbounded zmq pipe.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED)
        sock.connect(self._endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake[0], zmq.POLLIN)
        try:
            while True:
                stopping = self._stopping
                self._send_records(sock)
                while self._commands:
                    self._commands.popleft()(sock)
                self._drain_backlog(sock)
                self._receive(sock)
                self._watch(monitor, sock)
                if stopping:
                    return
                woken = dict(poller.poll(int(FLUSH_INTERVAL * 1000))).get(self._wake[0])
                self._take_wakeups(bool(woken))
        finally:
            self._leave_unacknowledged()
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            context.term()

    def _take_wakeups(self, readable: bool) -> None:
        """Empty the wake pipe, showing the signals it noted (see signals.py) to the watch,
        which it also sees at every turn."""
        woken = b""
        if readable:
            with contextlib.suppress(BlockingIOError):
                woken = os.read(self._wake[0], 4096)
        if self.signals is not None:
            self.signals.watch(woken)

    def _watch(self, monitor: zmq.Socket, sock: zmq.Socket) -> None:
        """On every (re)connection to a daemon, and after ``RESEND_AFTER`` seconds without
        an acknowledgement, send again what was not acknowledged: a daemon that restarted
        or crashed lost what it had not committed; storage ignores what it already has."""
        connected = False
        while _readable(monitor):
            monitor.recv_multipart()
            connected = True
            if self._ever_connected:
                self._reconnections += 1
            self._ever_connected = True
        waiting = bool(self._unacked or self._spills)
        stalled = waiting and time.monotonic() - self._progress_at > RESEND_AFTER
        if connected or stalled:
            self._resend(sock)

    def _resend(self, sock: zmq.Socket) -> None:
        self._progress_at = time.monotonic()
        unacked = {id(frame) for _, frame in self._unacked}
        self._backlog = deque(f for f in self._backlog if id(f) not in unacked)
        for spilled in self._spills:  # the oldest first: the daemon reads the files
            self._send(sock, protocol.pack(protocol.spilled(
                self._trial, self._execution, self._producer, str(spilled.path))))
        for _, frame in self._unacked:
            self._send(sock, frame)
        for frame in self._queries.values():
            self._send(sock, frame)
        if self._sent_seq:
            self._send(sock, protocol.pack(
                protocol.sync(self._trial, self._execution, self._producer, self._sent_seq)))

    def _send_records(self, sock: zmq.Socket) -> None:
        """What is pending, in messages of up to ``BATCH_RECORDS``, each halved while it is
        over the size the daemon accepts (one record never is: refused at the call)."""
        pending = self._pending
        while pending:
            count = min(len(pending), BATCH_RECORDS)
            first = self._sent_seq + 1
            frame = self._frame(first, pending[:count])
            while count > 1 and len(frame) > MAX_BATCH_BYTES:
                count //= 2
                frame = self._frame(first, pending[:count])
            del pending[:count]  # records appended meanwhile go past the slice
            self._sent_seq += count
            self._send_batch(sock, frame)

    def _frame(self, first: int, items: list[Pending]) -> bytes:
        """The records message of ``items``, numbered from ``first``: packed as
        ``protocol.records`` would be, with the records copied once, straight into it."""
        head = protocol.pack(
            protocol.records(self._trial, self._execution, self._producer, first, b""))
        if not head.endswith(_EMPTY_RECORDS):  # not the layout this relies on: pack it all
            return protocol.pack(protocol.records(
                self._trial, self._execution, self._producer, first, _batch(items)))
        count = len(items)
        size = 3 + count * len(_STATISTIC) + sum(map(len, items))  # array16 header included
        head = head[:-2] + _BIN32 + size.to_bytes(4, "big") + _ARRAY16 + count.to_bytes(2, "big")
        try:
            return _STATISTIC.join([head, *items])
        except TypeError:  # other kinds among them (as pairs): they are rare
            return protocol.pack(protocol.records(
                self._trial, self._execution, self._producer, first, _batch(items)))

    def _send_batch(self, sock: zmq.Socket, frame: bytes) -> None:
        """One records message, kept until acknowledged."""
        self._unacked.append((self._sent_seq, frame))
        self._unacked_bytes += len(frame)
        self._send(sock, frame)
        if self._unacked_bytes > self._buffer_bound:
            self._spill_oldest(self._buffer_bound // 2)
        elif self._unacked_bytes > RESIDENT_BYTES and not self._backlog:
            # The daemon took every message and commits slower than the script logs: the
            # oldest wait for their acknowledgement on disk, not in the script's memory.
            self._spill_oldest(RESIDENT_BYTES // 2)

    def _spill_oldest(self, keep: int) -> None:
        """Move the oldest unacknowledged messages to the spill file until ``keep`` bytes
        are left in memory: no daemon takes them now, and memory stays bounded."""
        moved: list[tuple[int, bytes]] = []
        while self._unacked and self._unacked_bytes > keep:
            moved.append(self._unacked.popleft())
            self._unacked_bytes -= len(moved[-1][1])
        if not moved:
            return
        if not self._spills or self._spills[-1].full():
            self._spills.append(SpillFile(self._spill_directory, self._producer,
                                          next(self._spill_numbers)))
        self._spills[-1].add(moved)
        ids = {id(frame) for _, frame in moved}
        self._backlog = deque(f for f in self._backlog if id(f) not in ids)

    def _leave_unacknowledged(self) -> None:
        """At the end, what no daemon acknowledged goes to the spill, for the daemon."""
        if not self._unacked and not self._spills:
            return
        try:
            self._spill_oldest(0)
            for spilled in self._spills:
                spilled.leave()
            self.left_in_spill = (str(self._spills[0].path) if len(self._spills) == 1 else
                                  f"{len(self._spills)} files of {self._spill_directory}")
        except OSError as exc:
            print(f"kleio: could not keep unacknowledged records on disk: {exc}",
                  file=sys.stderr)

    def _send(self, sock: zmq.Socket, frame: bytes) -> None:
        if not self._backlog:
            try:
                sock.send(frame, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
        self._backlog.append(frame)

    def _drain_backlog(self, sock: zmq.Socket) -> None:
        while self._backlog:
            try:
                sock.send(self._backlog[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            self._backlog.popleft()

    def _receive(self, sock: zmq.Socket) -> None:
        while _readable(sock):
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._dispatch(protocol.unpack(frame))
            except protocol.ProtocolError as exc:
                print(f"kleio: ignored a message from the daemon: {exc}", file=sys.stderr)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == protocol.ACK:
            acked = int(message["seq"])
            if acked > self._acked_seq:
                self._acked_seq = acked
                self._progress_at = time.monotonic()
            while self._unacked and self._unacked[0][0] <= acked:
                self._unacked_bytes -= len(self._unacked.popleft()[1])
            while self._spills and self._spills[0].last_seq <= acked:
                self._spills.popleft().remove()  # the daemon has everything it held
        elif kind == protocol.BLOB_ACK:
            self._blob_acks[message["upload"]] = message
        elif kind in (protocol.REPLY, protocol.REFUSED) and message.get("req") is not None:
            self._queries.pop(int(message["req"]), None)
            self._replies[int(message["req"])] = message
        elif kind == protocol.REFUSED and not self._said_refused:
            self._said_refused = True
            print(f"kleio: the daemon refused records: {message['error']['message']}",
                  file=sys.stderr)

    # -- waiting (caller's thread) ---------------------------------------------------

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        self._ensure_running()
        deadline = time.monotonic() + timeout
        while not done():
            if self._aborted or time.monotonic() > deadline:
                raise DaemonUnavailable(
                    f"kleio: the daemon did not answer within {timeout:.0f} s while {what}; "
                    "check it with `kleio daemon status`"
                )
            time.sleep(WAIT_STEP)

    def _command(self, command: Command) -> None:
        self._commands.append(command)

    def _ask(self, sock: zmq.Socket, req: int, frame: bytes) -> None:
        self._queries[req] = frame
        self._send(sock, frame)

    def _send_later(self, frame: bytes) -> None:
        self._commands.append(lambda sock: self._send(sock, frame))

    # -- artifacts and queries --------------------------------------------------------

    def upload(self, fileobj: BinaryIO) -> tuple[str, int]:
        """Stream ``fileobj`` to the daemon; return its sha256 and size once stored.

        A daemon that restarts mid-upload loses it: a seekable file is sent again from
        its start (up to ``UPLOAD_TRIES`` times), anything else fails clearly."""
        start = fileobj.tell() if fileobj.seekable() else None
        for attempt in range(1, UPLOAD_TRIES + 1):
            try:
                return self._upload_once(fileobj)
            except _UploadLost as exc:
                if start is None or attempt == UPLOAD_TRIES:
                    raise DaemonUnavailable(
                        f"kleio: the artifact could not be stored: {exc}; log it again") from None
                fileobj.seek(start)
        raise AssertionError("unreachable")

    def _upload_once(self, fileobj: BinaryIO) -> tuple[str, int]:
        import hashlib  # here: OpenSSL costs a script that stores no artifact 3.5 MiB

        upload = os.urandom(16).hex()
        reconnections = self._reconnections
        digest = hashlib.sha256()
        offset = 0
        chunks = 0
        while True:
            data = fileobj.read(protocol.BLOB_CHUNK_BYTES)
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("log_artifact needs a binary file object (open it with 'rb')")
            data = bytes(data)
            last = len(data) < protocol.BLOB_CHUNK_BYTES
            digest.update(data)
            frame = protocol.pack(protocol.blob(upload, offset, data, last))
            self._send_later(frame)
            offset += len(data)
            chunks += 1
            if last or chunks % BLOB_WINDOW == 0:
                self._wait_blob(upload, offset, last, reconnections)
            if last:
                break
        stored = self._blob_acks.pop(upload)["sha256"]
        if stored != digest.hexdigest():
            raise DaemonUnavailable("kleio: the daemon stored different bytes than were sent")
        return stored, offset

    def _wait_blob(self, upload: str, offset: int, last: bool, reconnections: int) -> None:
        def acked() -> bool:
            if self._reconnections != reconnections:
                raise _UploadLost("the daemon restarted during the upload")
            ack = self._blob_acks.get(upload)
            if ack is not None and ack.get("error"):
                self._blob_acks.pop(upload)
                raise _UploadLost(str(ack["error"]))
            # The last chunk may be empty (a size that is a multiple of the chunk): wait for
            # the ack that closes the upload, not one for the same offset before it.
            return ack is not None and int(ack["offset"]) >= offset and (
                not last or ack.get("sha256") is not None)

        self._wait(acked, flush_bound(), "storing an artifact")

    def query(self, name: str, args: dict[str, Any]) -> Any:
        """Ask the daemon about this trial, after everything logged so far is committed."""
        req = next(self._requests)
        message = protocol.query(self._trial, self._execution, self._producer, req, name, args)
        frame = protocol.pack(message)
        # Records appended before this call are sent first: the I/O thread sends
        # records before it runs commands.
        self._command(lambda sock: self._ask(sock, req, frame))
        self._wait(lambda: req in self._replies, flush_bound(), f"answering {name}")
        answer = self._replies.pop(req)
        if answer["t"] == protocol.REFUSED:
            raise RequestRefused(answer["error"]["code"], answer["error"]["message"])
        return answer.get("result")

    # -- the end ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything, and wait within a bound for the last record's acknowledgement."""
        missing, bound = self._flush(timeout)
        if missing:
            print(f"kleio: {missing} records were not acknowledged by the daemon within "
                  f"{bound:.0f} s yet; check `kleio daemon status`", file=sys.stderr)

    def _flush(self, timeout: float | None) -> tuple[int, float]:
        """How many records were not acknowledged within the bound, and the bound."""
        target: list[int] = []

        def sync(sock: zmq.Socket) -> None:
            self._take_wakeups(True)  # a signal that came before the flush is journaled
            self._send_records(sock)  # what was appended since the records step, too
            last = self._sent_seq
            self._send(sock, protocol.pack(
                protocol.sync(self._trial, self._execution, self._producer, last)))
            target.append(last)

        self._command(sync)
        bound = flush_bound() if timeout is None else timeout
        try:
            self._wait(lambda: bool(target) and self._acked_seq >= target[0], bound,
                       "flushing the last records")
        except DaemonUnavailable:
            return (target[0] if target else self._sent_seq + len(self._pending)) \
                - self._acked_seq, bound
        return 0, bound

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the I/O thread, which leaves what no daemon acknowledged in the
        spill; later records are flushed one by one."""
        if self._closed:
            return
        missing, bound = 0, 0.0
        try:
            missing, bound = self._flush(timeout)
        finally:
            self._closed = True
            self.append = self._append_after_close
            self._stopping = True
            if self._thread is not None:
                self._thread.join(timeout=CLOSE_JOIN)
        if missing and self.left_in_spill:
            print(f"kleio: {missing} records were not acknowledged within {bound:.0f} s; they "
                  f"are kept in {self.left_in_spill}, which kleiod stores when it runs",
                  file=sys.stderr)
        elif missing:
            print(f"kleio: {missing} records were not acknowledged by the daemon within "
                  f"{bound:.0f} s and may be lost; check `kleio daemon status`",
                  file=sys.stderr)

    def abort(self) -> None:
        """Stop waiting for the daemon now (the user gave up: a Ctrl-C after the end)."""
        self._aborted = True


def _readable(sock: zmq.Socket) -> bool:
    """Whether a message waits, asked without releasing the GIL: every call that releases
    it costs the I/O thread up to the switch interval (5 ms) to take it back from a
    logging loop, so ``recv`` and ``poll`` are called only when they have work."""
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def _batch(items: list[Pending]) -> bytes:
    """Items as a packed list of [kind, body] records."""
    return _ARRAY16 + len(items).to_bytes(2, "big") + b"".join(
        b"".join(item) if isinstance(item, tuple) else _STATISTIC + item for item in items)


def _pipe() -> tuple[int, int]:
    """A non-blocking pipe: how a logging thread wakes the I/O thread from its poll."""
    reader, writer = os.pipe()
    for end in (reader, writer):
        os.set_blocking(end, False)
    return reader, writer
