"""Ingest on a real ROUTER socket (inproc) over a real SQLite journal: producers' frames as
``kleio_client.protocol`` builds them, taken in as the daemon's loop hands them over
(``Ingest.accept``), committed, then acknowledged; refusals, spill files, uploads and
queries answered on the same socket."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from kleio_client import protocol
from kleio_client.spill import SpillFile
from kleiod.errors import StorageError
from kleiod.ingest import BATCH_SECONDS, Buffering, Ingest
from kleiod.live import Live
from kleiod.spill import Spill
from kleiod.storage import sqlite_connection
from kleiod.storage.base import Claim, TrialSpec
from kleiod.storage.sqlite import SQLiteStorage

SPEC = TrialSpec(id="ab" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")
PRODUCER = "p1"


@dataclass
class Wire:
    """The daemon's side (``ingest``) and a producer's (``producer``) of one socket."""

    ingest: Ingest
    storage: SQLiteStorage
    router: zmq.Socket
    producer: zmq.Socket
    published: list[list[bytes]]
    spills: Path  # where producers leave their spill files

    def send(self, message: dict[str, Any] | bytes) -> None:
        self.producer.send(message if isinstance(message, bytes) else protocol.pack(message))
        assert self.router.poll(5000), "the frame never reached the ingest socket"
        identity, frame = self.router.recv_multipart()
        self.ingest.accept(identity, frame)

    def answers(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` messages the producer was sent, and nothing more."""
        got: list[dict[str, Any]] = []
        for _ in range(count):
            assert self.producer.poll(5000), f"{len(got)} answers of {count}: {got}"
            got.append(protocol.unpack(self.producer.recv()))
        assert not self.producer.poll(0), f"more than {count} answers"
        return got

    def stored(self, kind: str = protocol.STATISTIC) -> list[Any]:
        return [r["body"].get("step") for r in self.storage.read_records(SPEC.id, [kind])]


@pytest.fixture
def wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_MS", 50)  # a locked journal fails fast
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://ingest")
    producer = context.socket(zmq.DEALER)
    producer.connect("inproc://ingest")
    storage = SQLiteStorage(tmp_path / "journal.sqlite")
    storage.reserve(SPEC, Claim("h", 1, 30))
    published: list[list[bytes]] = []
    spills = tmp_path / "producer-spills"
    spills.mkdir()
    buffering = Buffering(Spill(tmp_path / "spill"), 1 << 20, spills)
    ingest = Ingest(storage, router, Live(published.append), buffering)
    yield Wire(ingest, storage, router, producer, published, spills)
    producer.close(linger=0)
    router.close(linger=0)
    context.term()


def _frame(seq: int, *steps: int, execution: int = 1, producer: str = PRODUCER) -> bytes:
    """A records message of statistics, as the client's logger frames it."""
    items: list[protocol.PackedRecord] = [msgpack.packb({"step": s}) for s in steps]
    return protocol.records_frame(SPEC.id, execution, producer, seq, items)


def test_records_are_acknowledged_once_committed_not_when_received(wire: Wire):
    wire.send(_frame(1, 0, 1, 2))
    assert wire.answers(0) == [] and wire.stored() == []
    due = wire.ingest.due_in()
    assert due is not None and 0 <= due <= BATCH_SECONDS
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 3)]
    assert wire.stored() == [0, 1, 2] and wire.ingest.counters.committed == 3
    assert wire.ingest.due_in() is None


def test_committed_statistics_are_published_live_with_their_position(wire: Wire):
    wire.send(_frame(1, 0, 1))
    wire.ingest.commit()
    ((topic, frame),) = wire.published
    live = protocol.unpack(frame)
    assert topic == protocol.live_topic(SPEC.id, protocol.STATISTIC)
    assert (live["n"], live["execution"], live["boot"]) == (1, 1, wire.ingest.live.boot)
    assert (
        live["position"] == wire.storage.read_records(SPEC.id, [protocol.STATISTIC])[0]["position"]
    )
    assert [r["step"] for _, r in msgpack.unpackb(live["records"])] == [0, 1]


def test_a_sync_commits_and_acknowledges_everything_before_it(wire: Wire):
    wire.send(_frame(1, 0, 1))
    wire.send(protocol.sync(SPEC.id, 1, PRODUCER, 2))
    assert wire.answers(2) == [protocol.ack(PRODUCER, 2)] * 2  # the commit's, the sync's
    assert wire.stored() == [0, 1]
    wire.send(protocol.sync(SPEC.id, 1, "quiet", 1))  # a producer that sent nothing yet
    assert wire.answers(1) == [protocol.ack("quiet", 0)]


def test_a_resend_is_stored_once_and_acknowledged_again(wire: Wire):
    for _ in range(2):
        wire.send(_frame(1, 0, 1, 2))
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 3)]
    wire.send(_frame(2, 1, 2))  # after the commit, cut elsewhere
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 3)]
    assert wire.stored() == [0, 1, 2]
    assert (wire.ingest.counters.committed, wire.ingest.counters.duplicates) == (3, 5)


def test_a_message_past_a_hole_is_dropped_until_the_hole_is_filled(wire: Wire):
    wire.send(_frame(1, 0, 1))
    wire.send(_frame(5, 4))  # seqs 3 and 4 were lost with a daemon that crashed
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 2)]
    assert wire.stored() == [0, 1] and wire.ingest.counters.out_of_order == 1
    wire.send(_frame(3, 2, 3))  # the producer sends everything unacknowledged again
    wire.send(_frame(5, 4))
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 5)]
    assert wire.stored() == [0, 1, 2, 3, 4]


def test_records_of_several_kinds_are_stored_as_runs_of_one_kind(wire: Wire):
    def other(kind: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
        return protocol.RECORD_PREFIXES[kind], msgpack.packb(body)

    items: list[protocol.PackedRecord] = [
        msgpack.packb({"step": 0}),
        msgpack.packb({"step": 1}),
        other(protocol.OUTPUT, {"text": "hello"}),
        msgpack.packb({"step": 2}),
        other(protocol.RESOURCE, {"path": "data.csv", "sha256": "0" * 64}),
    ]
    wire.send(protocol.records_frame(SPEC.id, 1, PRODUCER, 1, items))
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 5)]
    kinds = [protocol.STATISTIC, protocol.OUTPUT, protocol.RESOURCE]
    assert [(c["count"]) for c in wire.storage.read_chunks(SPEC.id, kinds)] == [2, 1, 1, 1]
    records = wire.storage.read_records(SPEC.id, kinds)
    assert [(r["seq"], r["kind"]) for r in records] == [
        (1, protocol.STATISTIC),
        (2, protocol.STATISTIC),
        (3, protocol.OUTPUT),
        (4, protocol.STATISTIC),
        (5, protocol.RESOURCE),
    ]
    assert [topic.split(b".")[-1] for topic, _ in wire.published] == [
        b"statistic",
        b"output",
        b"statistic",
    ]  # resources are not followed


def _records(**changes: Any) -> dict[str, Any]:
    message = protocol.records(
        SPEC.id, 1, PRODUCER, 1, msgpack.packb([[protocol.STATISTIC, {"step": 0}]])
    )
    return {k: v for k, v in {**message, **changes}.items() if v is not None}


@pytest.mark.parametrize(
    "message, says",
    [
        ({"v": protocol.PROTOCOL_VERSION, "t": "nonsense"}, "unknown message type 'nonsense'"),
        ({"v": 99, "t": protocol.RECORDS}, "protocol version 99 is not"),
        (b"\xc1", "undecodable message"),
        (_records(execution=0), "execution must be an integer"),
        (_records(seq="1"), "seq must be an integer"),
        (_records(producer=None), "refused: 'producer'"),
        (_records(records=msgpack.packb([[protocol.STATISTIC, [1]]])), "body must be a map"),
        (_records(records=msgpack.packb([["gossip", {}]])), "unknown record kind 'gossip'"),
        (_records(records=msgpack.packb([])), "records must be a list of 1 to"),
    ],
)
def test_a_malformed_message_is_refused_and_nothing_is_stored(wire: Wire, message, says):
    wire.send(message)
    (refusal,) = wire.answers(1)
    assert refusal["t"] == protocol.REFUSED and refusal["req"] is None
    assert refusal["error"]["code"] == protocol.E_BAD_REQUEST
    assert says in refusal["error"]["message"]
    wire.ingest.commit()
    assert wire.stored() == [] and wire.ingest.counters.refused_messages == 1


def test_records_of_an_execution_that_does_not_own_the_trial_are_refused(wire: Wire):
    wire.send(_frame(1, 0, 1, execution=2))
    wire.ingest.commit()
    refusal, ack = wire.answers(2)
    assert refusal["error"]["code"] == protocol.E_NOT_FOUND
    assert "execution 2 of trial abababababab does not own the trial" in refusal["error"]["message"]
    assert ack == protocol.ack(PRODUCER, 2)  # acknowledged too: resending cannot help
    assert wire.stored() == [] and wire.ingest.counters.refused_records == 2


def test_a_producer_s_spill_file_is_taken_in_before_what_follows(wire: Wire):
    spilled = SpillFile(wire.spills, PRODUCER, 1)
    spilled.add([(2, _frame(1, 0, 1)), (3, _frame(3, 2))])
    wire.send(protocol.spilled(SPEC.id, 1, PRODUCER, str(spilled.path)))
    wire.send(_frame(4, 3))
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 4)]
    assert wire.stored() == [0, 1, 2, 3]
    assert spilled.path.exists()  # the producer removes it once acknowledged
    spilled.remove()


def test_a_spill_file_elsewhere_or_of_another_producer_is_refused(wire: Wire, tmp_path):
    elsewhere = tmp_path / "x.frames"
    wire.send(protocol.spilled(SPEC.id, 1, PRODUCER, str(elsewhere)))
    assert "is not a spill file of" in wire.answers(1)[0]["error"]["message"]
    theirs = SpillFile(wire.spills, "p2", 1)
    theirs.add([(1, _frame(1, 0, producer="p2"))])
    wire.send(protocol.spilled(SPEC.id, 1, PRODUCER, str(theirs.path)))
    assert "holds another producer's messages" in wire.answers(1)[0]["error"]["message"]
    wire.ingest.commit()
    assert wire.stored() == []
    theirs.remove()


def test_spill_files_of_producers_that_are_gone_are_taken_in_and_removed(wire: Wire):
    gone = SpillFile(wire.spills, PRODUCER, 1)
    gone.add([(2, _frame(1, 0, 1))])
    gone.leave()  # the producer exited with no daemon: its lock is released
    living = SpillFile(wire.spills, "p2", 1)
    living.add([(1, _frame(1, 9, producer="p2"))])
    wire.ingest.adopt_orphans()
    assert wire.stored() == [0, 1]
    assert not gone.path.exists() and living.path.exists()
    living.remove()


def test_an_artifact_s_bytes_are_stored_and_acknowledged_by_offset(wire: Wire):
    wire.send(protocol.blob("up1", 0, b"ab", False))
    assert wire.answers(1) == [protocol.blob_ack("up1", 2, None)]
    wire.send(protocol.blob("up1", 2, b"cd", True))
    sha256 = hashlib.sha256(b"abcd").hexdigest()
    assert wire.answers(1) == [protocol.blob_ack("up1", 4, sha256)]
    assert Path(wire.storage.blob_path(sha256)).read_bytes() == b"abcd"


def test_an_upload_out_of_order_ends_and_must_start_again(wire: Wire):
    wire.send(protocol.blob("up2", 0, b"ab", False))
    wire.send(protocol.blob("up2", 5, b"x", False))
    _, told = wire.answers(2)
    assert (told["offset"], told["sha256"]) == (5, None)
    assert "offset 5, expected 2" in told["error"]
    wire.send(protocol.blob("up2", 2, b"cd", True))  # the upload is gone: from its start
    assert "never saw the upload's start" in wire.answers(1)[0]["error"]


def test_an_upload_with_a_name_that_is_not_one_is_refused(wire: Wire):
    wire.send(protocol.blob("../x", 0, b"ab", True))
    (refusal,) = wire.answers(1)
    assert refusal["error"]["code"] == protocol.E_BAD_REQUEST
    assert "an upload is named by" in refusal["error"]["message"]


def test_a_script_s_query_is_answered_after_its_records_are_committed(wire: Wire):
    wire.send(_frame(1, 0, 1, 2))
    wire.send(protocol.query(SPEC.id, 1, PRODUCER, 7, "statistics", {}))
    ack, answer = wire.answers(2)
    assert (ack, answer["t"], answer["req"]) == (protocol.ack(PRODUCER, 3), protocol.REPLY, 7)
    (segment,) = answer["result"]["segments"]
    assert [r["step"] for _, r in msgpack.unpackb(segment["body"])] == [0, 1, 2]
    wire.send(protocol.query(SPEC.id, 1, PRODUCER, 8, "gossip", {}))
    (refusal,) = wire.answers(1)
    assert (refusal["req"], refusal["error"]["code"]) == (8, protocol.E_BAD_REQUEST)


def test_a_report_of_the_files_run_is_journaled_once_with_its_execution(wire: Wire):
    files = {"train.py": "1" * 64, "pkg/model.py": "2" * 64}
    report = protocol.query(SPEC.id, 1, PRODUCER, 4, protocol.IMPORTED, {"files": files})
    wire.send(report)
    wire.send(report)  # sent again after a reconnection: the same record
    assert [a["req"] for a in wire.answers(2)] == [4, 4]
    (record,) = wire.storage.read_records(SPEC.id, [protocol.IMPORTED])
    assert (record["execution"], record["body"]) == (1, {"files": files})


@pytest.mark.parametrize(
    "files",
    [
        {"/etc/passwd": "1" * 64},
        {"../outside.py": "1" * 64},
        {"a.py": "not a hash"},
        {"a.py": "G" * 64},
        ["a.py"],
        {f"m{i}.py": "1" * 64 for i in range(protocol.MAX_IMPORTED_FILES + 1)},
    ],
)
def test_a_report_that_is_not_relative_paths_and_hashes_is_refused(wire: Wire, files):
    wire.send(protocol.query(SPEC.id, 1, PRODUCER, 5, protocol.IMPORTED, {"files": files}))
    (refusal,) = wire.answers(1)
    assert (refusal["req"], refusal["error"]["code"]) == (5, protocol.E_BAD_REQUEST)
    assert wire.storage.read_records(SPEC.id, [protocol.IMPORTED]) == []


def _until_due(ingest: Ingest) -> None:
    deadline = time.monotonic() + 10
    while ingest.due_in() != 0.0:
        assert time.monotonic() < deadline, "the retry never came due"
        time.sleep(0.01)


def test_while_the_journal_is_locked_records_are_kept_and_acknowledged_once_written(
    wire: Wire, tmp_path
):
    other = sqlite3.connect(tmp_path / "journal.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the journal's write lock
    wire.send(_frame(1, 0, 1))
    with pytest.raises(StorageError, match="locked"):
        wire.ingest.commit()
    assert wire.ingest.database_away() and "locked" in (wire.ingest.database_error or "")
    wire.send(protocol.sync(SPEC.id, 1, PRODUCER, 2))  # no ack while nothing is written
    wire.send(protocol.query(SPEC.id, 1, PRODUCER, 9, "statistics", {}))
    (refusal,) = wire.answers(1)
    assert (refusal["req"], refusal["error"]["code"]) == (9, protocol.E_STORAGE)
    other.execute("ROLLBACK")
    _until_due(wire.ingest)
    wire.ingest.commit()
    assert wire.answers(1) == [protocol.ack(PRODUCER, 2)]
    assert wire.stored() == [0, 1] and not wire.ingest.database_away()
    other.close()
