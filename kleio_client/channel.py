"""This process's producer: numbered, batched, acknowledged delivery of its records.

The hot path is one ``list.append`` of a packed statistic (:attr:`Channel.append`).
A background I/O thread owns the socket: every ``FLUSH_INTERVAL`` it takes what
the list holds, joins it into numbered batches and sends them, runs the commands the caller
queued (sync, blob chunks, queries) and records what the daemon answered.
The caller waits for answers by polling plain attributes, never by taking a
lock, so a signal handler in the main thread (SIGTERM, Ctrl-C) can flush
without deadlocking on a lock the interrupted code holds.  After a fork the
child starts a new producer with its own socket and thread.  The socket and its
backlog are ``link.py``'s, the messages not yet acknowledged (and their spill)
``window.py``'s, an artifact's stream ``upload.py``'s, the messages' layout
``protocol.py``'s.
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
from typing import Any, BinaryIO

import msgpack

from kleio_client import protocol, spill, upload
from kleio_client.errors import DaemonUnavailable, RequestRefused
from kleio_client.link import Link
from kleio_client.protocol import RECORD_PREFIXES, PackedRecord
from kleio_client.signals import SignalWatch, start_without_signals
from kleio_client.values import not_text
from kleio_client.window import Window

FLUSH_INTERVAL = 0.01
# Records per message, at most 65535 (a msgpack array16).  Each send releases the GIL,
# which a logging loop may then keep for the switch interval (5 ms): fewer records per
# message and the I/O thread falls behind a fast loop; more, and the messages' memory
# varies more from one turn to the next (and fragments).
BATCH_RECORDS = 8192
MAX_BATCH_BYTES = protocol.MAX_MESSAGE_BYTES // 4
# Records queued for the I/O thread past which the logging thread wakes it and hands it the
# GIL (``catch_up``): about 4 ms of the fastest loop, 0.4 MiB of the script's memory.
QUEUE_RECORDS = 4096
CATCH_UP_WAIT = 0.05
WAIT_STEP = 0.001
RESEND_AFTER = 10.0
CLOSE_JOIN = 5.0  # time for the I/O thread to leave a spill at exit

Command = Callable[[Link], None]  # run by the I/O thread
MAX_RECORD_BYTES = MAX_BATCH_BYTES - 64


class Channel:
    """Numbered, batched, acknowledged delivery of one producer's records."""

    def __init__(
        self, endpoint: str, trial: str, execution: int, settings: protocol.ClientSettings
    ) -> None:
        self._endpoint = endpoint
        self._spill_directory = spill.directory_for(endpoint)
        self._buffer_bound = settings.buffer_bytes
        self._flush_timeout = settings.flush_timeout
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
        self._pending: list[PackedRecord] = []
        self.queued = self._pending  # read by the hot path, to call catch_up
        self._stuck_at = -1  # the I/O thread's _sent_seq when catch_up last timed out
        self.append: Callable[[PackedRecord], None] = self._pending.append
        self._commands: deque[Command] = deque()
        self._window = Window(self._spill_directory, self._producer, self._buffer_bound)
        self._queries: dict[int, bytes] = {}  # asked and not yet answered
        self._progress_at = time.monotonic()
        self._ever_connected = False
        self.reconnections = 0  # an upload in progress is lost at each
        self._sent_seq = 0
        self._acked_seq = 0
        self._requests = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self.blob_acks: dict[str, dict[str, Any]] = {}
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
            raise ValueError(
                f"cannot log a {kind} record of {len(packed)} bytes: the limit is "
                f"{MAX_RECORD_BYTES}; store large data as an artifact"
            )
        self.append(packed if kind == protocol.STATISTIC else (RECORD_PREFIXES[kind], packed))

    def catch_up(self) -> None:
        """Called by a logging thread that queued over ``QUEUE_RECORDS``: the I/O thread
        is behind, because each time it releases the GIL (to send, to write) a busy loop
        keeps it for the switch interval (5 ms).  Sleeping hands it the GIL at once, until
        it has taken the queue or for ``CATCH_UP_WAIT`` at most: what the script's memory
        holds stays bounded, whatever the thread scheduling.  An I/O thread that took
        nothing meanwhile is stuck (a stalled disk): no record waits for it again until
        it has taken some, so a stall costs the loop one wait, and the queue grows."""
        thread = self._thread
        if (
            thread is None
            or not thread.is_alive()
            or self._closed
            or self._stuck_at == self._sent_seq
            or thread.ident == threading.get_ident()
        ):
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
        self._window.close_inherited()
        self._reset()
        self.append = self._first_append

    def _first_append(self, item: PackedRecord) -> None:
        self.append = self._pending.append
        self._ensure_running()
        if self.signals is not None:
            self.signals.arm(self.wake_fd)
        self.append(item)

    def _append_after_close(self, item: PackedRecord) -> None:
        """A record logged after the exit flush (a late atexit handler, a __del__): sent
        and acknowledged at once, since no later flush will come."""
        self._pending.append(item)
        self._closed = False
        self.flush(timeout=5.0)
        self._closed = True

    # -- the I/O thread -----------------------------------------------------------

    def _io_loop(self) -> None:
        link = Link(self._endpoint, self._wake[0])
        try:
            while True:
                stopping = self._stopping
                self._send_records(link)
                while self._commands:
                    self._commands.popleft()(link)
                link.drain()
                self._receive(link)
                self._watch(link)
                if stopping:
                    return
                self._take_wakeups(link, link.wait(int(FLUSH_INTERVAL * 1000)))
        finally:
            self._leave_unacknowledged()
            link.close()

    def _take_wakeups(self, link: Link, readable: bool) -> None:
        """Empty the wake pipe and show the signals it noted to the watch (signals.py), which
        sees every turn; each SIGINT or SIGTERM received is journaled, as a query: a
        daemon that does not know it refuses the query alone, never a batch of records."""
        woken = b""
        if readable:
            with contextlib.suppress(BlockingIOError):
                woken = os.read(self._wake[0], 4096)
        if self.signals is None:
            return
        for name in self.signals.watch(woken):
            req = next(self._requests)
            self._ask(
                link,
                req,
                protocol.pack(
                    protocol.query(
                        self._trial,
                        self._execution,
                        self._producer,
                        req,
                        protocol.SIGNAL,
                        {"signal": name, "pid": os.getpid()},
                    )
                ),
            )

    def _watch(self, link: Link) -> None:
        """On every (re)connection to a daemon, and after ``RESEND_AFTER`` seconds without
        an acknowledgement, send again what was not acknowledged: a daemon that restarted
        or crashed lost what it had not committed; storage ignores what it already has."""
        connections = link.connections()
        if connections:
            self.reconnections += connections - (not self._ever_connected)
            self._ever_connected = True
        stalled = self._window.waiting and time.monotonic() - self._progress_at > RESEND_AFTER
        if connections or stalled:
            self._resend(link)

    def _resend(self, link: Link) -> None:
        self._progress_at = time.monotonic()
        link.forget({id(frame) for frame in self._window.frames()})
        for path in self._window.spill_paths():  # the oldest first: the daemon reads them
            link.send(
                protocol.pack(
                    protocol.spilled(self._trial, self._execution, self._producer, str(path))
                )
            )
        for frame in self._window.frames():
            link.send(frame)
        for frame in self._queries.values():
            link.send(frame)
        if self._sent_seq:
            link.send(
                protocol.pack(
                    protocol.sync(self._trial, self._execution, self._producer, self._sent_seq)
                )
            )

    def _send_records(self, link: Link) -> None:
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
            self._send_batch(link, frame)

    def _frame(self, first: int, items: list[PackedRecord]) -> bytes:
        return protocol.records_frame(self._trial, self._execution, self._producer, first, items)

    def _send_batch(self, link: Link, frame: bytes) -> None:
        """One records message, kept until acknowledged."""
        link.send(frame)
        spilled = self._window.add(self._sent_seq, frame, all_taken=link.all_taken)
        if spilled:  # sent from the spill file now, not from the backlog
            link.forget(spilled)

    def _leave_unacknowledged(self) -> None:
        """At the end, what no daemon acknowledged goes to the spill, for the daemon."""
        try:
            self._window.leave()
        except OSError as exc:
            print(f"kleio: could not keep unacknowledged records on disk: {exc}", file=sys.stderr)

    def _receive(self, link: Link) -> None:
        for frame in link.received():
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
            self._window.acknowledged(acked)
        elif kind == protocol.BLOB_ACK:
            self.blob_acks[message["upload"]] = message
        elif kind in (protocol.REPLY, protocol.REFUSED) and message.get("req") is not None:
            self._queries.pop(int(message["req"]), None)
            self._replies[int(message["req"])] = message
        elif kind == protocol.REFUSED and not self._said_refused:
            self._said_refused = True
            print(
                f"kleio: the daemon refused records: {message['error']['message']}", file=sys.stderr
            )

    # -- waiting (caller's thread) ---------------------------------------------------

    def wait(self, done: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        """Until ``done()``, within ``timeout`` (by default the flush bound)."""
        self._ensure_running()
        timeout = self._flush_timeout if timeout is None else timeout
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

    def _ask(self, link: Link, req: int, frame: bytes) -> None:
        self._queries[req] = frame
        link.send(frame)

    def send_later(self, frame: bytes) -> None:
        self._commands.append(lambda link: link.send(frame))

    # -- artifacts and queries --------------------------------------------------------

    def upload(self, fileobj: BinaryIO) -> tuple[str, int]:
        """Stream ``fileobj`` to the daemon; its sha256 and size once stored (upload.py)."""
        return upload.upload(self, fileobj)

    def query(self, name: str, args: dict[str, Any]) -> Any:
        """Ask the daemon about this trial, after everything logged so far is committed."""
        req = next(self._requests)
        message = protocol.query(self._trial, self._execution, self._producer, req, name, args)
        frame = protocol.pack(message)
        # Records appended before this call are sent first: the I/O thread sends
        # records before it runs commands.
        self._command(lambda link: self._ask(link, req, frame))
        self.wait(lambda: req in self._replies, f"answering {name}")
        answer = self._replies.pop(req)
        if answer["t"] == protocol.REFUSED:
            raise RequestRefused(answer["error"]["code"], answer["error"]["message"])
        return answer.get("result")

    def tell(self, name: str, args: dict[str, Any]) -> None:
        """A query nobody waits for (a report): sent after the records logged before it,
        again on reconnection until answered, and committed before a later flush's
        acknowledgement (the daemon takes one producer's messages in order).  A daemon
        that does not know it refuses it alone."""
        req = next(self._requests)
        message = protocol.query(self._trial, self._execution, self._producer, req, name, args)
        frame = protocol.pack(message)
        self._command(lambda link: self._ask(link, req, frame))

    # -- the end ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything, and wait within a bound for the last record's acknowledgement."""
        missing, bound = self._flush(timeout)
        if missing:
            print(
                f"kleio: {missing} records were not acknowledged by the daemon within "
                f"{bound:.0f} s yet; check `kleio daemon status`",
                file=sys.stderr,
            )

    def _flush(self, timeout: float | None) -> tuple[int, float]:
        """How many records were not acknowledged within the bound, and the bound."""
        target: list[int] = []

        def sync(link: Link) -> None:
            self._take_wakeups(link, True)  # a signal that came before it is journaled first
            self._send_records(link)  # what was appended since the records step, too
            last = self._sent_seq
            link.send(
                protocol.pack(protocol.sync(self._trial, self._execution, self._producer, last))
            )
            target.append(last)

        self._command(sync)
        bound = self._flush_timeout if timeout is None else timeout
        try:
            self.wait(
                lambda: bool(target) and self._acked_seq >= target[0],
                "flushing the last records",
                bound,
            )
        except DaemonUnavailable:
            return (
                target[0] if target else self._sent_seq + len(self._pending)
            ) - self._acked_seq, bound
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
        if missing and self._window.left_in_spill:
            print(
                f"kleio: {missing} records were not acknowledged within {bound:.0f} s; they "
                f"are kept in {self._window.left_in_spill}, which kleiod stores when it runs",
                file=sys.stderr,
            )
        elif missing:
            print(
                f"kleio: {missing} records were not acknowledged by the daemon within "
                f"{bound:.0f} s and may be lost; check `kleio daemon status`",
                file=sys.stderr,
            )

    def abort(self) -> None:
        """Stop waiting for the daemon now (the user gave up: a Ctrl-C after the end)."""
        self._aborted = True


def _pipe() -> tuple[int, int]:
    """A non-blocking pipe: how a logging thread wakes the I/O thread from its poll."""
    reader, writer = os.pipe()
    for end in (reader, writer):
        os.set_blocking(end, False)
    return reader, writer
