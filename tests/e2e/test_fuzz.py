"""The daemon's sockets under fuzzing: whatever arrives, kleiod stays up, keeps answering
the well-behaved clients and counts what it refused.

One real daemon per test; hypothesis drives many examples against it through real
DEALER sockets.  After every example a separate, well-behaved client is answered and the
refusal counters moved exactly as they should.  FUZZ_EXAMPLES=2000 fuzzes deeper.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import msgpack
import psutil
import pytest
import zmq
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from kleio_client import protocol
from tests.conftest import Env, Kleio, trial_id

REPLY_TIMEOUT_MS = 60_000  # a busy machine's daemon may answer late; it must answer
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "80")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTED = {protocol.E_BAD_REQUEST, protocol.E_VERSION}
INGEST_TYPES = (protocol.RECORDS, protocol.SYNC, protocol.SPILLED, protocol.BLOB, protocol.QUERY)
# Verbs that are safe to call with arbitrary arguments: never `stop`, `spawn`, `export` or
# `import`, which would stop the daemon, start processes or write files where told.
SAFE_COMMANDS = (
    "ping",
    "status",
    "heartbeat",
    "reserve",
    "start_execution",
    "end_execution",
    "resolve",
    "ls",
    "trial",
    "info",
    "stats",
    "cat",
    "diff",
    "artifacts",
    "branch_point",
    "resources",
    "tail",
    "columns",
    "chunks",
)
ARGUMENT_NAMES = (
    "id",
    "execution",
    "pid",
    "spec",
    "capture",
    "fields",
    "allow",
    "exact",
    "host",
    "signals",
    "exit_code",
    "kind",
    "where",
    "filename",
    "metadata",
    "other",
    "after",
    "follow",
    "timestamp",
    "limit",
    "segments",
    "status",
    "tags",
    "configuration",
)


# -- strategies ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
frames = st.binary(max_size=2048)
multipart = st.lists(frames, min_size=2, max_size=5)
record_bodies = st.dictionaries(st.text(max_size=10), scalars, max_size=4)
record_kinds = st.sampled_from(
    [protocol.STATISTIC, protocol.ARTIFACT, protocol.OUTPUT, protocol.RESOURCE]
)
record_lists = st.lists(st.tuples(record_kinds, record_bodies).map(list), min_size=1, max_size=20)


def _not_an_int(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError, OverflowError):
        return True
    return False


# Values that ``int()`` refuses, and the ``nan`` and infinities it cannot convert.
not_integers = (
    st.none()
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), scalars, max_size=3)
    | st.text(max_size=10)
    | st.sampled_from([math.nan, math.inf, -math.inf])
).filter(_not_an_int)
# What each ingest message type reads before doing anything, and its integer fields.
REQUIRED = {
    protocol.RECORDS: ("trial", "execution", "producer", "seq", "records"),
    protocol.SYNC: ("trial", "execution", "producer"),
    protocol.BLOB: ("upload", "offset", "data"),
    protocol.QUERY: ("req", "trial", "execution", "args", "name"),
    protocol.SPILLED: ("path",),
}
INTEGERS = {
    protocol.RECORDS: ("execution", "seq"),
    protocol.SYNC: ("execution",),
    protocol.BLOB: (),  # an unknown upload at another offset is answered, not refused
    protocol.QUERY: ("req", "execution"),
    protocol.SPILLED: (),
}
# Arguments of any shape, each name present half the time, numbers often at the edges.
argument_values = st.integers(-(2**63), 2**64 - 1) | st.floats() | values
trial_specs = st.fixed_dictionaries(
    {
        "id": st.text("0123456789abcdef", min_size=32, max_size=32),
        "command": values,
        "identity": values,
        "cwd": values,
        "user": values,
    },
    optional={"parent": values, "root": values, "branch_kind": values, "branch_point": values},
)
safe_uploads = st.text("0123456789abcdef", min_size=1, max_size=32)  # never a path


def valid_ingest_message(kind: str, upload: str) -> dict[str, Any]:
    packed = msgpack.packb([[protocol.STATISTIC, {"x": 1}]], use_bin_type=True)
    return {
        protocol.RECORDS: protocol.records("fuzz-trial", 1, "fuzz-producer", 1, packed),
        protocol.SYNC: protocol.sync("fuzz-trial", 1, "fuzz-producer", 1),
        protocol.BLOB: protocol.blob(upload, 0, b"bytes", True),
        protocol.QUERY: protocol.query(
            "fuzz-trial", 1, "fuzz-producer", 1, "statistics", {"where": {}}
        ),
        # Refused as it is: only files of the daemon's spill directory are read.
        protocol.SPILLED: protocol.spilled(
            "fuzz-trial", 1, "fuzz-producer", f"/nonexistent/{upload}.spill"
        ),
    }[kind]


@st.composite
def malformed_ingest_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ingest message with one defect that makes the daemon refuse it."""
    kind = draw(st.sampled_from(sorted(REQUIRED)))
    message = valid_ingest_message(kind, draw(safe_uploads))
    defects = ["version", "type", "missing"] + (["integer"] if INTEGERS[kind] else [])
    if kind in (protocol.RECORDS, protocol.SPILLED):
        defects.append(kind)
    defect = draw(st.sampled_from(defects))
    if defect == "version":
        message["v"] = draw(values.filter(lambda v: v != protocol.PROTOCOL_VERSION))
    elif defect == "type":
        message["t"] = draw(st.text(max_size=12).filter(lambda t: t not in INGEST_TYPES))
    elif defect == "missing":
        del message[draw(st.sampled_from(REQUIRED[kind]))]
    elif defect == "integer":
        message[draw(st.sampled_from(INTEGERS[kind]))] = draw(not_integers)
    elif defect == protocol.SPILLED:
        message["path"] = draw(values)
    else:
        message["records"] = draw(
            st.one_of(
                values.filter(lambda v: not isinstance(v, bytes)),
                st.binary(max_size=64).filter(_not_records),
                st.lists(values, max_size=3).map(lambda items: msgpack.packb(items)),
            )
        )
    return message


def _not_records(packed: bytes) -> bool:
    try:
        items = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except Exception:  # msgpack raises several unrelated types
        return True
    return not (
        isinstance(items, list)
        and items
        and all(
            isinstance(pair, list)
            and len(pair) == 2
            and pair[0]
            in (protocol.STATISTIC, protocol.ARTIFACT, protocol.OUTPUT, protocol.RESOURCE)
            for pair in items
        )
    )


@st.composite
def malformed_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A control request the daemon must refuse: wrong version, type, command or arguments."""
    message = protocol.request(draw(st.integers(0, 2**31)), "ping", {})
    defect = draw(st.sampled_from(["version", "type", "command", "arguments", "missing"]))
    if defect == "version":
        message["v"] = draw(values.filter(lambda v: v != protocol.PROTOCOL_VERSION))
    elif defect == "type":
        message["t"] = draw(st.text(max_size=12).filter(lambda t: t != protocol.REQUEST))
    elif defect == "command":
        message["cmd"] = draw(
            values.filter(
                lambda c: (
                    str(c) not in SAFE_COMMANDS + ("stop", "spawn", "export", "import", "rm", "gc")
                )
            )
        )
    elif defect == "arguments":
        message["args"] = draw(values.filter(lambda a: bool(a) and not isinstance(a, dict)))
    else:
        del message[draw(st.sampled_from(["v", "t", "cmd"]))]
    return message


# -- a real daemon and its clients -----------------------------------------------------------


class Daemon:
    """A running kleiod, a well-behaved control client, and fuzzing sockets."""

    def __init__(self, kleio: Kleio, isolated: Env) -> None:
        kleio.ok("daemon", "start")
        self.kleio = kleio
        self.pid = int(kleio.json("daemon", "status")["pid"])  # type: ignore[index]
        self.endpoints = protocol.Endpoints.in_directory(str(isolated.kleio_runtime))
        self.context = zmq.Context()
        self.control = self.dealer(self.endpoints.control)  # the well-behaved client
        self._ids = 0
        self.refused = (0, 0)  # what the counters must say: messages, records

    def dealer(self, endpoint: str) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        return sock

    def close(self) -> None:
        self.context.destroy(linger=0)

    def call(
        self, cmd: str, args: dict[str, Any] | None = None, sock: zmq.Socket | None = None
    ) -> dict[str, Any]:
        self._ids += 1
        sock = sock or self.control
        sock.send(protocol.pack(protocol.request(self._ids, cmd, args or {})))
        while True:
            reply = receive(sock)
            if reply.get("id") == self._ids:
                return reply

    def counters(self) -> tuple[int, int]:
        status = self.call("status")["result"]
        return int(status["refused_messages"]), int(status["refused_records"])

    def assert_counted(self, before: tuple[int, int], messages: int = 0, records: int = 0) -> None:
        """Since ``before``, the daemon counted exactly these refusals."""
        self.refused = (self.refused[0] + messages, self.refused[1] + records)
        assert self.counters() == (before[0] + messages, before[1] + records)

    def assert_serving(self) -> None:
        """The daemon is alive and a separate, well-behaved client gets its answer."""
        assert self.alive(), "kleiod died"
        assert self.call("ping")["result"]["pid"] == self.pid

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def refused_request(self, sock: zmq.Socket, frame: bytes) -> dict[str, Any]:
        """Send ``frame`` to the control socket: its reply, a refusal; the daemon serves on
        and counted one refused message."""
        before = self.counters()
        sock.send(frame, zmq.NOBLOCK)
        reply = receive(sock)
        assert reply["ok"] is False, reply
        self.assert_serving()
        self.assert_counted(before, messages=1)
        return reply

    def refused_ingest(self, sock: zmq.Socket, frame: bytes) -> dict[str, Any]:
        """Send ``frame`` to the ingest socket: the one answer, a refusal; the daemon serves
        on and counted one refused message."""
        before = self.counters()
        sock.send(frame, zmq.NOBLOCK)
        [refusal] = self.barrier(sock)
        assert refusal["t"] == protocol.REFUSED
        self.assert_serving()
        self.assert_counted(before, messages=1)
        return refusal

    def barrier(self, sock: zmq.Socket) -> list[dict[str, Any]]:
        """Everything ``sock`` sent to the ingest socket before is handled and committed:
        a ``sync`` is answered after what its producer sent before it.  Returns the
        replies that came before the barrier's acknowledgement."""
        sock.send(protocol.pack(protocol.sync("barrier", 1, "barrier", 0)))
        replies: list[dict[str, Any]] = []
        while True:
            reply = receive(sock)
            if reply.get("t") == protocol.ACK and reply.get("producer") == "barrier":
                return replies
            replies.append(reply)

    def assert_cli_status(self) -> None:
        """Another client, the real CLI, still gets answers and sees every refusal."""
        status = self.kleio.json("daemon", "status")
        assert isinstance(status, dict) and status["pid"] == self.pid
        assert (status["refused_messages"], status["refused_records"]) == self.refused


def receive(sock: zmq.Socket) -> dict[str, Any]:
    assert sock.poll(REPLY_TIMEOUT_MS), "kleiod did not answer"
    return protocol.unpack(sock.recv(), limit=None)


@contextlib.contextmanager
def running_daemon(kleio: Kleio, isolated: Env) -> Iterator[Daemon]:
    """Once per test, never once per example: examples share the daemon."""
    daemon = Daemon(kleio, isolated)
    try:
        yield daemon
    finally:
        daemon.close()


def refused_by_unpack(frame: bytes) -> bool:
    try:
        protocol.unpack(frame)
    except protocol.ProtocolError:
        return True
    return False


LOGS_A_CHECKPOINT = (
    "from kleio_client import kleio_logger as k; "
    "k.log_statistic(epoch=1, loss=0.5); "
    "k.log_artifact('weights.bin', b'weights', epoch=1)"
)


def reserved_trial(kleio: Kleio, code: str = "pass") -> tuple[str, int]:
    """A real trial and its execution, reserved and run by the CLI."""
    done = kleio("python", "-c", code)
    assert done.returncode == 0, done.stderr
    tid = trial_id(done.stderr)
    info = kleio.json("info", tid)
    assert isinstance(info, dict)
    return tid, int(info["executions"][-1]["number"])


# -- control socket -------------------------------------------------------------------------


def test_random_bytes_on_the_control_socket_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.control)

        @FUZZ
        @given(frame=frames)
        def single(frame: bytes) -> None:
            assume(refused_by_unpack(frame))
            reply = daemon.refused_request(fuzzer, frame)
            assert reply["error"]["code"] == protocol.E_VERSION

        @FUZZ
        @given(parts=multipart)
        def several(parts: list[bytes]) -> None:
            before = daemon.counters()
            fuzzer.send_multipart(parts, zmq.NOBLOCK)  # a request is one frame: no answer
            assert daemon.call("ping", sock=fuzzer)["ok"] is True  # handled after the parts
            daemon.assert_serving()
            daemon.assert_counted(before, messages=1)

        single()
        several()
        daemon.assert_cli_status()


def test_truncated_and_padded_requests_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.control)

        @FUZZ
        @given(
            req=st.integers(-(2**63), 2**64 - 1),
            cmd=st.sampled_from(["ping", "status"]),
            args=st.dictionaries(st.text(max_size=8), values, max_size=3),
            cut=st.floats(0, 1, exclude_max=True),
            padding=st.binary(min_size=1, max_size=8),
            padded=st.booleans(),
        )
        def damaged(
            req: int, cmd: str, args: dict[str, Any], cut: float, padding: bytes, padded: bool
        ) -> None:
            frame = protocol.pack(protocol.request(req, cmd, args))
            frame = frame + padding if padded else frame[: int(len(frame) * cut)]
            reply = daemon.refused_request(fuzzer, frame)
            assert reply["error"]["code"] == protocol.E_VERSION

        damaged()
        daemon.assert_cli_status()


def test_malformed_requests_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.control)

        @FUZZ
        @given(message=malformed_requests())
        def malformed(message: dict[str, Any]) -> None:
            reply = daemon.refused_request(fuzzer, protocol.pack(message))
            assert reply["error"]["code"] in COUNTED, reply

        malformed()
        daemon.assert_cli_status()


@pytest.mark.slow
def test_real_commands_with_arguments_of_any_shape_get_answers(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        tid, _ = reserved_trial(kleio)
        fuzzer = daemon.dealer(daemon.endpoints.control)
        ids = st.sampled_from([tid, tid[:8]]) | argument_values
        arguments = st.fixed_dictionaries(
            {}, optional={**{name: argument_values for name in ARGUMENT_NAMES}, "id": ids}
        )

        def answered(cmd: str, args: dict[str, Any]) -> None:
            before = daemon.counters()
            reply = daemon.call(cmd, args, sock=fuzzer)
            daemon.assert_serving()
            assert reply["ok"] or reply["error"]["code"] != protocol.E_INTERNAL, reply
            daemon.assert_counted(
                before, messages=not reply["ok"] and reply["error"]["code"] in COUNTED
            )

        @FUZZ
        @given(cmd=st.sampled_from(SAFE_COMMANDS), args=arguments)
        @example(cmd="heartbeat", args={"id": tid, "execution": 2**63})  # past SQLite's range
        @example(cmd="heartbeat", args={"id": tid, "execution": math.inf})
        @example(
            cmd="columns",
            args={
                "segments": [{"trial": tid, "position": 2**64 - 1, "start": 0, "end": 1}],
                "where": [],
            },
        )
        @example(
            cmd="columns",
            args={
                "segments": [{"trial": tid, "position": 0, "start": 0, "end": 1}],
                "where": [["a", "zz", 1]],
            },
        )
        def any_command(cmd: str, args: dict[str, Any]) -> None:
            answered(cmd, args)

        # `allow` and `fields` other than maps: see the xfail test below.
        choices = st.none() | st.dictionaries(st.sampled_from(["code", "environment"]), values)

        @FUZZ
        @given(spec=trial_specs, args=arguments, allow=choices, fields=choices)
        def reservation(
            spec: dict[str, Any], args: dict[str, Any], allow: Any, fields: Any
        ) -> None:
            answered("reserve", {**args, "spec": spec, "allow": allow, "fields": fields})

        any_command()
        reservation()
        daemon.assert_cli_status()


# -- ingest socket --------------------------------------------------------------------------


def test_random_bytes_on_the_ingest_socket_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.ingest)

        @FUZZ
        @given(frame=frames)
        def single(frame: bytes) -> None:
            assume(refused_by_unpack(frame))
            refusal = daemon.refused_ingest(fuzzer, frame)
            assert refusal["error"]["code"] in COUNTED

        @FUZZ
        @given(parts=multipart)
        def several(parts: list[bytes]) -> None:
            before = daemon.counters()
            fuzzer.send_multipart(parts, zmq.NOBLOCK)
            assert daemon.barrier(fuzzer) == []
            daemon.assert_serving()
            daemon.assert_counted(before, messages=1)

        single()
        several()
        daemon.assert_cli_status()
        assert_a_trial_still_logs(kleio)


def test_truncated_ingest_messages_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.ingest)

        @FUZZ
        @given(
            kind=st.sampled_from(sorted(REQUIRED)),
            upload=safe_uploads,
            cut=st.floats(0, 1, exclude_max=True),
        )
        def truncated(kind: str, upload: str, cut: float) -> None:
            frame = protocol.pack(valid_ingest_message(kind, upload))
            daemon.refused_ingest(fuzzer, frame[: int(len(frame) * cut)])

        truncated()
        daemon.assert_cli_status()


def test_malformed_ingest_messages_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.ingest)

        @FUZZ
        @given(message=malformed_ingest_messages())
        @example(message={**valid_ingest_message(protocol.RECORDS, ""), "execution": math.inf})
        @example(message={**valid_ingest_message(protocol.SYNC, ""), "execution": 2**64 - 1})
        @example(message=valid_ingest_message(protocol.BLOB, "f" * 300))  # too long a file name
        def malformed(message: dict[str, Any]) -> None:
            before = daemon.counters()
            fuzzer.send(protocol.pack(message), zmq.NOBLOCK)
            daemon.barrier(fuzzer)
            daemon.assert_serving()
            daemon.assert_counted(before, messages=1)

        malformed()
        daemon.assert_cli_status()
        assert_a_trial_still_logs(kleio)


def test_records_for_unknown_trials_or_another_execution_are_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        tid, execution = reserved_trial(kleio)
        fuzzer = daemon.dealer(daemon.endpoints.ingest)
        # Valid-looking: counters in range (out of range is a malformed message, below).
        other_executions = st.sampled_from([execution + 1, execution + 2]) | st.integers(
            1, 2**62 - 1
        ).filter(lambda e: e != execution)
        unknown_trials = st.text(max_size=70).filter(lambda t: t != tid) | st.sampled_from(
            [tid[:12], tid + "0", tid.upper()]
        )

        def refused_records(
            trial: str, number: int, producer: str, seq: int, items: list[Any]
        ) -> None:
            packed = msgpack.packb(items, use_bin_type=True)
            before = daemon.counters()
            fuzzer.send(
                protocol.pack(protocol.records(trial, number, producer, seq, packed)), zmq.NOBLOCK
            )
            replies = daemon.barrier(fuzzer)
            assert any(
                r["t"] == protocol.REFUSED and r["error"]["code"] == protocol.E_NOT_FOUND
                for r in replies
            ), replies
            daemon.assert_serving()
            daemon.assert_counted(before, records=len(items))

        @FUZZ
        @given(
            trial=unknown_trials,
            number=st.integers(1, 2**62 - 1),
            producer=st.text(max_size=20),
            seq=st.just(1),
            items=record_lists,
        )
        def unknown_trial(
            trial: str, number: int, producer: str, seq: int, items: list[Any]
        ) -> None:
            refused_records(trial, number, producer, seq, items)

        @FUZZ
        @given(
            number=other_executions,
            producer=st.text(max_size=20),
            seq=st.just(1),
            items=record_lists,
        )
        def another_execution(number: int, producer: str, seq: int, items: list[Any]) -> None:
            refused_records(tid, number, producer, seq, items)

        unknown_trial()
        another_execution()
        daemon.assert_cli_status()
        assert kleio.json("stats", tid) == []  # nothing reached the real trial


def test_queries_of_any_shape_are_answered_or_refused_and_counted(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        tid, execution = reserved_trial(kleio, LOGS_A_CHECKPOINT)
        fuzzer = daemon.dealer(daemon.endpoints.ingest)
        names = st.sampled_from(["statistics", "artifacts", "load_artifact"]) | values
        filenames = st.sampled_from(["weights.bin", None]) | values
        metadata = st.sampled_from([{}, {"epoch": 1}]) | values
        queries = st.fixed_dictionaries(
            {}, optional={"where": metadata, "filename": filenames, "metadata": metadata}
        )

        @FUZZ
        @given(
            trial=st.sampled_from([tid, tid[:8]]) | st.text(max_size=40),
            number=st.sampled_from([execution, execution + 1]) | argument_values,
            req=st.integers(0, 2**31) | argument_values,
            name=names,
            args=queries,
        )
        def query(trial: str, number: Any, req: Any, name: Any, args: dict[str, Any]) -> None:
            before = daemon.counters()
            fuzzer.send(
                protocol.pack(protocol.query(trial, number, "fuzz", req, name, args)), zmq.NOBLOCK
            )
            replies = daemon.barrier(fuzzer)
            daemon.assert_serving()
            answered = [r for r in replies if r["t"] == protocol.REPLY]
            assert len(answered) <= 1 and len(replies) <= 1, replies
            daemon.assert_counted(before, messages=not answered)

        query()
        daemon.assert_cli_status()
        assert kleio.json("stats", tid) == [{"epoch": 1, "loss": 0.5}]


# -- message size ---------------------------------------------------------------------------


@pytest.mark.parametrize("socket_name", ["control", "ingest"])
def test_an_oversized_frame_drops_its_sender_only(kleio, isolated, socket_name):
    with running_daemon(kleio, isolated) as daemon:
        endpoint = getattr(daemon.endpoints, socket_name)
        bystander = daemon.dealer(daemon.endpoints.ingest)
        daemon.barrier(bystander)  # connected before the flood
        for _ in range(3):
            sender = daemon.dealer(endpoint)
            monitor = sender.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            sender.send(b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1))
            assert monitor.poll(REPLY_TIMEOUT_MS), "the oversized frame was not refused"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
            daemon.assert_serving()
            daemon.barrier(bystander)
            sender.disable_monitor()
            monitor.close(0)
            sender.close(0)
        at_the_limit = daemon.dealer(daemon.endpoints.control)
        assert (
            daemon.call(
                "ping", {"pad": b"x" * (protocol.MAX_MESSAGE_BYTES - 100)}, sock=at_the_limit
            )["ok"]
            is True
        )  # the limit is no lower
        daemon.assert_cli_status()


# -- found by fuzzing, to be fixed in kleiod/ingest.py ----------------------------------------


def test_records_with_a_seq_out_of_range_do_not_poison_the_batch(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        tid, execution = reserved_trial(kleio)
        fuzzer = daemon.dealer(daemon.endpoints.ingest)
        packed = msgpack.packb([[protocol.STATISTIC, {"x": 1}]], use_bin_type=True)
        fuzzer.send(protocol.pack(protocol.records(tid, execution, "p", -(2**63), packed)))
        daemon.barrier(fuzzer)  # the batch is committed
        daemon.assert_serving()
        assert_a_trial_still_logs(kleio)


def test_an_upload_name_never_escapes_the_artifact_store(kleio, isolated, tmp_path):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.ingest)
        escaped = tmp_path / "escaped"
        fuzzer.send(protocol.pack(protocol.blob(str(escaped), 0, b"bytes", False)))
        daemon.barrier(fuzzer)
        daemon.assert_serving()
        assert not any(p.name.startswith("escaped") for p in tmp_path.iterdir())


def test_refused_upload_chunks_leave_no_file_open(kleio, isolated):
    with running_daemon(kleio, isolated) as daemon:
        fuzzer = daemon.dealer(daemon.endpoints.ingest)
        daemon.barrier(fuzzer)
        opened = psutil.Process(daemon.pid).num_fds()
        for upload in range(50):
            message = protocol.blob(f"{upload:x}", 0, b"bytes", True)
            del message["last"]
            fuzzer.send(protocol.pack(message))
        daemon.barrier(fuzzer)
        daemon.assert_serving()
        assert psutil.Process(daemon.pid).num_fds() < opened + 10


@pytest.mark.parametrize("name", ["allow", "fields"])
def test_a_reservation_whose_choices_are_not_maps_is_refused_and_counted(kleio, isolated, name):
    with running_daemon(kleio, isolated) as daemon:
        spec = {"id": "0" * 32, "command": [], "identity": {}, "cwd": "", "user": ""}
        before = daemon.counters()
        reply = daemon.call("reserve", {"spec": spec, "pid": 1, name: 1})
        daemon.assert_serving()
        assert reply["error"]["code"] == protocol.E_BAD_REQUEST
        daemon.assert_counted(before, messages=1)


def assert_a_trial_still_logs(kleio: Kleio) -> None:
    """A real producer, after the fuzzing, still has its records stored."""
    done = kleio(
        "python",
        "-c",
        "from kleio_client import kleio_logger; kleio_logger.log_statistic(after_fuzzing=True)",
    )
    assert done.returncode == 0, done.stderr
    assert kleio.json("stats", trial_id(done.stderr)) == [{"after_fuzzing": True}]
