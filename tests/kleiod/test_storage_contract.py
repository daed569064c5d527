"""The storage contract: one suite, every verb of ``kleiod.storage.base.Storage``, run
against both backends (a SQLite file, and a real MongoDB-wire server: ``database_url`` in
tests/kleiod/conftest.py).

Reservation is atomic in the database: racing processes on one database, one winner;
the execution number fences writes; records are idempotent per record; leases expire on
the database's clock.  Ids that name no trial are answered alike by both; artifacts are
stored once by content; journals move between databases (either way) as stored.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time

import msgpack
import psutil
import pytest

from kleio_client import protocol
from kleiod import states
from kleiod.errors import (
    AlreadyRunning,
    ArtifactMissing,
    BadRequest,
    StorageError,
    TrialCompleted,
    TrialNotFound,
)
from kleiod.reservation import imported_files
from kleiod.storage import open_storage
from kleiod.storage.base import SCRATCH, Chunk, Claim, ExecutionEnd, TrialSpec
from tests.conftest import ROUNDS

SPEC = TrialSpec(id="ab" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")


def _claim(pid: int, lease: float = 30.0) -> Claim:
    return Claim(host="h", pid=pid, lease_seconds=lease)


def _race(url: str, barrier, results, index: int) -> None:
    storage = open_storage(url)
    barrier.wait()
    try:
        storage.reserve(SPEC, _claim(1000 + index))
        results.put("won")
    except AlreadyRunning:
        results.put("refused")


def _outcomes_of_six(url: str, target) -> list:
    """Six processes running ``target`` on one database at once: what each said, sorted."""
    open_storage(url).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, barrier, results, i)) for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("round_", ROUNDS)
def test_processes_racing_on_one_database_let_exactly_one_run(database_url: str, round_: int):
    assert _outcomes_of_six(database_url, _race) == ["refused"] * 5 + ["won"]


def test_statuses_and_the_execution_number_fencing_token(database_url: str):
    storage = open_storage(database_url)
    first = storage.reserve(SPEC, _claim(1))
    assert (first.execution, first.previous_status) == (1, None)
    assert storage.renew_lease(SPEC.id, 1, 30)
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.BROKEN, 1, []))
    second = storage.reserve(SPEC, _claim(2))
    assert (second.execution, second.previous_status) == (2, states.BROKEN)
    assert not storage.renew_lease(SPEC.id, 1, 30)  # not the owner any more
    stale = Chunk(
        SPEC.id,
        1,
        "p",
        1,
        1,
        protocol.STATISTIC,
        msgpack.packb([[protocol.STATISTIC, {"late": True}]]),
    )
    assert storage.append_chunks([stale]).refused == {(SPEC.id, 1)}  # fenced
    assert storage.read_records(SPEC.id, [protocol.STATISTIC]) == []
    storage.end_execution(ExecutionEnd(SPEC.id, 2, states.COMPLETED, 0, []))
    with pytest.raises(TrialCompleted):
        storage.reserve(SPEC, _claim(3))


def _stale_writer(url: str, producer: str, barrier, results) -> None:
    """Execution 1 logging as fast as it can until it is refused: what it was told."""
    storage = open_storage(url)
    barrier.wait()
    stored: list[int] = []
    try:
        for seq in range(1, 100_000):
            appended = storage.append_chunks([_one(1, producer, seq)])
            if appended.refused:
                break
            stored.append(seq)
            time.sleep(0.002)  # as a daemon's batches come: others get the database too
    except Exception as exc:  # shown by the test, which would otherwise wait in vain
        results.put((producer, repr(exc)))
        raise
    results.put((producer, stored))


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + 30
    while psutil.Process(pid).status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
        assert time.monotonic() < deadline, f"writer {pid} never stopped"
        time.sleep(0.01)


def _one(execution: int, producer: str, seq: int) -> Chunk:
    body = msgpack.packb([[protocol.STATISTIC, {"p": producer, "seq": seq}]])
    return Chunk(SPEC.id, execution, producer, seq, 1, protocol.STATISTIC, body)


@pytest.mark.slow
@pytest.mark.parametrize("round_", ROUNDS)
def test_a_stale_writer_racing_the_new_owner_never_writes_after_it(database_url: str, round_: int):
    """The fencing check and the write are one: once the new execution has written, no
    record of the old one comes after it, and each of the old one's writes was either
    stored or refused, as it was told.  The stale writers are paused (a machine that
    froze) at any point of their writes while the new owner takes over and writes."""
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1, lease=-1))  # expired: anyone may take it over
    assert storage.append_chunks([_one(1, "first", 1)]).inserted == 1
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(5), ctx.Queue()
    writers = [
        ctx.Process(target=_stale_writer, args=(database_url, f"w{i}", barrier, results))
        for i in range(4)
    ]
    for writer in writers:
        writer.start()
    barrier.wait()
    deadline = time.monotonic() + 60
    while len(storage.read_records(SPEC.id, [protocol.STATISTIC])) < 40:
        assert time.monotonic() < deadline, "the stale writers never wrote"
    for writer in writers:
        os.kill(writer.pid, signal.SIGSTOP)
    for writer in writers:
        _wait_stopped(writer.pid)
    taken: list[int] = []

    def take_over() -> None:
        taken.append(storage.reserve(SPEC, _claim(2)).execution)
        taken.append(open_storage(database_url).append_chunks([_one(2, "new", 1)]).inserted)

    thread = threading.Thread(target=take_over)
    thread.start()
    thread.join(timeout=0.5)  # done at once unless a paused writer's write holds it back
    for writer in writers:
        os.kill(writer.pid, signal.SIGCONT)
    thread.join(timeout=60)
    assert taken == [2, 1]
    told = dict(results.get(timeout=120) for _ in writers)
    assert all(isinstance(seqs, list) for seqs in told.values()), told
    told["first"] = [1]
    for writer in writers:
        writer.join(timeout=60)
    records = storage.read_records(SPEC.id, [protocol.STATISTIC])
    owner = next(r["position"] for r in records if r["execution"] == 2)
    late = [r["body"] for r in records if r["execution"] == 1 and r["position"] > owner]
    assert late == [], f"{len(late)} records of the stale execution after the new one's"
    stored = {(r["body"]["p"], r["body"]["seq"]) for r in records if r["execution"] == 1}
    assert stored == {(p, s) for p, seqs in told.items() for s in seqs}


@pytest.mark.parametrize("offset", [-3600.0, 3600.0])
def test_leases_are_measured_on_the_database_s_clock(database_url: str, monkeypatch, offset: float):
    """A daemon whose machine's clock is an hour off neither declares a live trial lost
    at once nor keeps a dead one for an hour."""
    storage = open_storage(database_url)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + offset)
    live = TrialSpec(id="ef" * 16, command=["python", "live.py"], identity={}, cwd="/", user="u")
    storage.reserve(live, _claim(1, lease=600))
    storage.reserve(SPEC, _claim(2, lease=0.5))  # dies at once: nobody renews it
    deadline = real() + 60
    while SPEC.id not in storage.expire_leases():
        assert real() < deadline, "a lease of 0.5 s never ended"
        time.sleep(0.05)
    assert storage.get_trial(live.id)["status"] == states.RUNNING
    started = storage.get_trial(SPEC.id)["executions"][0]["start"]
    assert abs(started - real()) < 60  # on the database's clock too


def test_an_expired_lease_makes_the_trial_lost_and_resumable(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1, lease=-1))
    again = storage.reserve(SPEC, _claim(2))
    assert (again.execution, again.previous_status) == (2, states.LOST)
    history = [h["status"] for h in storage.get_trial(SPEC.id)["history"]]
    assert history == ["new", "running", "lost", "running"]


def test_chunks_are_idempotent_and_positions_follow_commit_order(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))

    def chunk(producer: str, seq: int, values: list[int], kind: str = protocol.STATISTIC) -> Chunk:
        body = msgpack.packb([[kind, {"v": v}] for v in values])
        return Chunk(SPEC.id, 1, producer, seq, len(values), kind, body)

    assert storage.append_chunks([chunk("a", 1, [1, 2]), chunk("b", 1, [10])]).inserted == 3
    # a resend held beside its original in one batch (the database was away): once
    assert storage.append_chunks([chunk("c", 1, [7]), chunk("c", 1, [7])]).inserted == 1
    assert storage.append_chunks([chunk("a", 1, [1, 2]), chunk("a", 3, [3])]).inserted == 1
    # a resend cut at other boundaries stores only what is new
    assert storage.append_chunks([chunk("a", 2, [2, 3, 4, 5])]).inserted == 2
    assert storage.append_chunks([chunk("b", 1, [10, 11])]).inserted == 1
    records = storage.read_records(SPEC.id, [protocol.STATISTIC])
    assert [r["body"]["v"] for r in records] == [1, 2, 10, 7, 3, 4, 5, 11]
    assert [r["seq"] for r in records] == [1, 2, 1, 1, 3, 4, 5, 2]
    positions = [r["position"] for r in records]
    assert positions == sorted(positions) and len(set(positions)) == 8


def test_expired_leases_are_swept_to_lost(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1, lease=-1))
    assert storage.expire_leases() == [SPEC.id]
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.LOST
    assert trial["executions"][0]["status"] == states.LOST
    # alive after all (a paused machine): its heartbeat takes it back, as nobody took over
    assert storage.renew_lease(SPEC.id, 1, 30)
    assert storage.get_trial(SPEC.id)["status"] == states.RUNNING
    storage.renew_lease(SPEC.id, 1, -1)  # its lease ends again: lost again
    storage.expire_leases()
    # its end, reported late, is what happened: it completed
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, []))
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.COMPLETED
    assert trial["executions"][0]["status"] == states.COMPLETED


def test_a_lost_execution_taken_over_stays_fenced(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1, lease=-1))
    storage.expire_leases()
    storage.reserve(SPEC, _claim(2))  # execution 2 takes over
    assert not storage.renew_lease(SPEC.id, 1, 30)
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, []))
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.RUNNING  # execution 2's
    assert [e["status"] for e in trial["executions"]] == [states.COMPLETED, states.RUNNING]


def _stats(
    values: list[int],
    seq: int = 1,
    producer: str = "p",
    execution: int = 1,
    trial: str = SPEC.id,
    kind: str = protocol.STATISTIC,
) -> Chunk:
    body = msgpack.packb([[kind, {"v": v}] for v in values])
    return Chunk(trial, execution, producer, seq, len(values), kind, body)


def test_captures_branches_and_positions(database_url: str):
    storage = open_storage(database_url)
    capture = {
        "environment": {"packages": {"zope.interface": {"version": "6.0"}}},
        "configuration": {"files": {"cfg.yaml": {"sha256": "x"}}},
        "$odd": {"": 1},
    }
    storage.reserve(SPEC, _claim(1), capture)
    assert storage.capture(SPEC.id) == capture  # keys with dots, $ and empty round-trip
    assert storage.end_position(SPEC.id) is None
    storage.append_chunks([_stats([1, 2, 3]), _stats([4], seq=4)])
    assert storage.last_seq(SPEC.id, 1, "p") == 4 and storage.last_seq(SPEC.id, 1, "q") == 0
    end = storage.end_position(SPEC.id)
    assert end == storage.read_records(SPEC.id, [protocol.STATISTIC])[-1]["position"]
    assert storage.logged_counts(SPEC.id, [protocol.STATISTIC]) == {1: 4}
    branch = TrialSpec(
        id="cd" * 16,
        command=SPEC.command,
        identity={},
        cwd="/",
        user="u",
        parent=SPEC.id,
        root=SPEC.id,
        branch_kind="change",
        branch_point=end,
    )
    storage.reserve(branch, _claim(2), {"x": 1})
    child = TrialSpec(
        id="ce" * 16,
        command=SPEC.command,
        identity={},
        cwd="/",
        user="u",
        parent=SPEC.id,
        root="ce" * 16,
        branch_kind="branch",
        branch_point=end,
    )
    storage.reserve(child, _claim(3))
    assert [c["id"] for c in storage.candidates(SPEC.id)] == [SPEC.id, "cd" * 16]
    trial = storage.get_trial("cd" * 16)
    assert (trial["parent"], trial["branch_kind"], trial["branch_point"]) == (
        SPEC.id,
        "change",
        end,
    )
    assert storage.end_position("ce" * 16) == end  # no records yet: its branch point
    assert [t["id"] for t in storage.list_trials()] == [SPEC.id, "cd" * 16, "ce" * 16]


def test_ids_resolve_by_unique_prefix(database_url: str):
    from kleiod.errors import AmbiguousId, TrialNotFound

    storage = open_storage(database_url)
    for trial_id in ("ab12" + "0" * 28, "ab34" + "0" * 28, "cd56" + "0" * 28):
        storage.reserve(
            TrialSpec(id=trial_id, command=["x"], identity={}, cwd="/", user="u"), _claim(1)
        )
    assert storage.resolve_id("ab1") == "ab12" + "0" * 28
    assert storage.resolve_id("CD") == "cd56" + "0" * 28
    with pytest.raises(AmbiguousId):
        storage.resolve_id("ab")
    with pytest.raises(TrialNotFound):
        storage.resolve_id("ff")
    with pytest.raises(TrialNotFound):
        storage.resolve_id("not-hex")


def test_blobs_are_stored_once_by_content(database_url: str, tmp_path):
    import hashlib

    storage = open_storage(database_url)
    payload = bytes(range(256)) * 5000
    for _ in range(2):
        writer = storage.begin_blob("upload")
        writer.write(0, payload[:1000])
        writer.write(1000, payload[1000:])
        assert writer.finish() == hashlib.sha256(payload).hexdigest()
    path = storage.blob_path(hashlib.sha256(payload).hexdigest())
    with open(path, "rb") as handle:
        assert handle.read() == payload


def test_chunks_read_as_stored_and_records_past_a_position(database_url: str):
    """What followers and fast readers use: chunks as stored (with or without their bodies,
    up to a position), records past a position, and the stored parts of a write."""
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    first = storage.append_chunks([_stats([1, 2]), _stats([3], seq=3)])
    assert [part.count for _, part in first.stored] == [2, 1]
    again = storage.append_chunks([_stats([1, 2, 3, 4])])  # a resend: only 4 is new
    assert [(part.seq, part.count) for _, part in again.stored] == [(4, 1)]
    chunks = storage.read_chunks(SPEC.id, [protocol.STATISTIC])
    assert [c["count"] for c in chunks] == [2, 1, 1]
    assert [c["position"] for c in chunks] == [p for p, _ in first.stored + again.stored]
    assert [pair[1]["v"] for c in chunks for pair in msgpack.unpackb(c["body"])] == [1, 2, 3, 4]
    assert all(
        c["body"] is None for c in storage.read_chunks(SPEC.id, [protocol.STATISTIC], bodies=False)
    )
    upto = storage.read_chunks(SPEC.id, [protocol.STATISTIC], upto=chunks[1]["position"])
    assert [c["count"] for c in upto] == [2, 1]
    chosen = storage.read_chunks(
        SPEC.id, [protocol.STATISTIC], positions=[chunks[2]["position"], chunks[0]["position"]]
    )
    assert [c["body"] for c in chosen] == [chunks[0]["body"], chunks[2]["body"]]
    assert storage.read_chunks(SPEC.id, [protocol.STATISTIC], positions=[]) == []
    after = storage.read_records(SPEC.id, [protocol.STATISTIC], after=chunks[0]["position"])
    assert [r["body"]["v"] for r in after] == [2, 3, 4]


def test_tags_are_added_and_removed_and_listed(database_url: str):
    from kleiod.errors import TrialNotFound

    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    assert storage.set_tags(SPEC.id, ["b", "a"], []) == ["a", "b"]
    assert storage.set_tags(SPEC.id, ["a", "c"], ["b"]) == ["a", "c"]
    assert storage.get_trial(SPEC.id)["tags"] == ["a", "c"]
    assert [t["tags"] for t in storage.list_trials()] == [["a", "c"]]
    with pytest.raises(TrialNotFound):
        storage.set_tags("cd" * 16, ["x"], [])


def _launch_claim(pid: int, launch: str | None) -> Claim:
    return Claim(host=f"node{pid}", pid=pid, lease_seconds=30, launch=launch)


def test_the_processes_of_one_launch_join_one_execution(database_url: str):
    """`srun -N3 kleio torchrun ...`: the first reserves, the others join its execution;
    a process of another launch is refused as ever."""
    storage = open_storage(database_url)
    first = storage.reserve(SPEC, _launch_claim(1, "slurm:7.0"))
    joined = [storage.reserve(SPEC, _launch_claim(pid, "slurm:7.0")) for pid in (2, 3)]
    assert (first.execution, first.joined) == (1, False)
    assert [(j.execution, j.joined) for j in joined] == [(1, True), (1, True)]
    for launch in ("slurm:8.0", None):
        with pytest.raises(AlreadyRunning):
            storage.reserve(SPEC, _launch_claim(4, launch))
    trial = storage.get_trial(SPEC.id)
    assert len(trial["executions"]) == 1
    assert [h["status"] for h in trial["history"]] == ["new", "running"]


def _launch_race(url: str, barrier, results, index: int) -> None:
    storage = open_storage(url)
    barrier.wait()
    try:
        reservation = storage.reserve(SPEC, _launch_claim(100 + index, "slurm:9.0"))
        results.put(("reserved", reservation.execution, reservation.joined))
    except AlreadyRunning as error:
        results.put(("refused", str(error), None))


@pytest.mark.parametrize("round_", ROUNDS)
def test_the_processes_of_one_launch_starting_at_once_all_join(database_url: str, round_: int):
    """A process that joined while the first was between its reservation and the
    execution's document was refused once (MongoDB, under load): all of them run."""
    outcomes = _outcomes_of_six(database_url, _launch_race)
    assert outcomes == [("reserved", 1, False)] + [("reserved", 1, True)] * 5
    storage = open_storage(database_url)
    for _ in range(5):
        storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, []))
    assert storage.get_trial(SPEC.id)["status"] == states.RUNNING  # the sixth runs still
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, []))
    assert storage.get_trial(SPEC.id)["status"] == states.COMPLETED


def test_a_launch_s_execution_ends_with_its_last_process_in_the_worst_status(database_url: str):
    storage = open_storage(database_url)
    for pid in (1, 2, 3):
        storage.reserve(SPEC, _launch_claim(pid, "slurm:7.0"))
    ends = [
        (states.COMPLETED, 0, []),
        (states.BROKEN, 1, []),
        (states.INTERRUPTED, -15, ["SIGTERM"]),
    ]
    for status, code, signals in ends[:2]:
        storage.end_execution(ExecutionEnd(SPEC.id, 1, status, code, signals))
        assert storage.get_trial(SPEC.id)["status"] == states.RUNNING  # one still runs
    status, code, signals = ends[2]
    storage.end_execution(ExecutionEnd(SPEC.id, 1, status, code, signals))
    trial = storage.get_trial(SPEC.id)
    execution = trial["executions"][0]
    assert (trial["status"], execution["status"]) == (states.BROKEN, states.BROKEN)
    assert (execution["exit_code"], execution["signals"]) == (1, ["SIGTERM"])
    assert [h["status"] for h in trial["history"]] == ["new", "running", "broken"]
    again = storage.reserve(SPEC, _launch_claim(4, "slurm:7.0"))  # a new execution now
    assert (again.execution, again.joined) == (2, False)


def test_a_launch_whose_lease_expired_is_not_joined_but_resumed(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, Claim(host="a", pid=1, lease_seconds=-1, launch="slurm:7.0"))
    again = storage.reserve(SPEC, _launch_claim(2, "slurm:7.0"))
    assert (again.execution, again.joined, again.previous_status) == (2, False, states.LOST)


def _ended(
    storage,
    execution: int,
    status: str = states.BROKEN,
    code: int | None = 1,
    signals: tuple[str, ...] = (),
) -> None:
    storage.end_execution(ExecutionEnd(SPEC.id, execution, status, code, list(signals)))


def _after(storage, moment: float) -> None:
    """Wait until the database's clock has passed ``moment`` (it counts milliseconds)."""
    deadline = time.monotonic() + 10
    while storage.clock() <= moment:
        assert time.monotonic() < deadline, "the database's clock stands still"


def test_an_execution_s_start_records_its_process(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    storage.start_execution(SPEC.id, 1, 4242)
    trial = storage.get_trial(SPEC.id)
    assert (trial["pid"], trial["executions"][0]["pid"]) == (4242, 4242)
    _ended(storage, 1)
    storage.reserve(SPEC, _claim(2))
    storage.start_execution(SPEC.id, 1, 99)  # late, from the first: the owner stays the second
    trial = storage.get_trial(SPEC.id)
    assert trial["pid"] == 2
    assert [e["pid"] for e in trial["executions"]] == [99, 2]


def test_the_database_s_clock_stamps_what_it_records(database_url: str):
    storage = open_storage(database_url)
    before = storage.clock()
    storage.reserve(SPEC, _claim(1))
    after = storage.clock()
    trial = storage.get_trial(SPEC.id)
    assert before <= trial["created"] <= trial["executions"][0]["start"] <= after
    assert trial["updated"] == trial["since"] == trial["executions"][0]["start"]
    assert abs(after - time.time()) < 60  # one machine here: the server's clock is its own


def test_each_execution_keeps_its_own_capture(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1), {"run": 1})
    _ended(storage, 1)
    storage.reserve(SPEC, _claim(2))  # captured nothing
    assert storage.capture(SPEC.id) == {"run": 1}  # the latest execution that has one
    assert (storage.capture(SPEC.id, 1), storage.capture(SPEC.id, 2)) == ({"run": 1}, None)
    assert storage.capture(SPEC.id, 3) is None
    _ended(storage, 2)
    storage.reserve(SPEC, _claim(3), {"run": 3})
    assert storage.capture(SPEC.id) == {"run": 3}
    assert storage.export_trial(SPEC.id)["captures"] == {1: {"run": 1}, 3: {"run": 3}}


def test_the_files_each_execution_ran_are_kept_with_it_and_fenced(database_url: str):
    """Reports of the files run (journaled as the daemon journals them: one record per
    query, under ``<producer>/imported``) read back per execution; a stale one is refused."""

    def report(execution: int, req: int, files: dict[str, str]) -> set:
        body = msgpack.packb([[protocol.IMPORTED, {"files": files}]])
        chunk = Chunk(SPEC.id, execution, "p/imported", req, 1, protocol.IMPORTED, body)
        return storage.append_chunks([chunk]).refused

    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    assert report(1, 1, {"train.py": "1" * 64}) == set()
    assert report(1, 1, {"train.py": "1" * 64}) == set()  # a resend: stored once
    assert report(1, 2, {"late.py": "2" * 64}) == set()
    _ended(storage, 1)
    storage.reserve(SPEC, _claim(2))
    assert report(1, 3, {"stale.py": "3" * 64}) == {(SPEC.id, 1)}
    assert imported_files(storage, SPEC.id) == {"late.py": "2" * 64, "train.py": "1" * 64}
    assert imported_files(storage, SPEC.id, 2) is None
    assert report(2, 1, {"train.py": "4" * 64}) == set()
    assert imported_files(storage, SPEC.id, 2) == {"train.py": "4" * 64}
    assert imported_files(storage, SPEC.id)["train.py"] == "4" * 64  # the latest report


def test_trials_are_listed_with_the_configuration_of_their_latest_capture(database_url: str):
    """In the one query that lists them: each trial's configuration as ``capture(id)``
    has it (from its latest execution that has a capture), None when there is none;
    infinities (which Python writes and JSON has not) and any text read back too."""
    storage = open_storage(database_url)
    first = {"options": {"--lr": 0.1, "--batch-size": 8}, "positional": ["data"]}
    storage.reserve(SPEC, _claim(1), {"configuration": first, "environment": {"a.b": 1}})
    _ended(storage, 1)
    storage.reserve(SPEC, _claim(2))  # captured nothing: the first execution's holds
    odd = {"options": {"--lr": math.inf, "--floor": -math.inf, "--name": "é😀\udcff"}}
    captures = {
        "cd" * 16: {"configuration": odd},
        "ce" * 16: {"code": {"commit": "x"}},
        "cf" * 16: None,
        "d0" * 16: {"configuration": "not a map"},
    }
    for index, (trial_id, capture) in enumerate(captures.items()):
        spec = TrialSpec(id=trial_id, command=["python", "t.py"], identity={}, cwd="/", user="u")
        storage.reserve(spec, _claim(3 + index), capture)
    listed = storage.list_trials(configurations=True)
    assert [t["configuration"] for t in listed] == [first, odd, None, None, "not a map"]
    assert [t["configuration"] for t in listed] == [
        (storage.capture(t["id"]) or {}).get("configuration") for t in listed
    ]
    assert [{k: v for k, v in t.items() if k != "configuration"} for t in listed] == (
        storage.list_trials()
    )  # the same trials, as listed without
    _stored_by_an_older_kleio(storage)
    assert storage.list_trials(configurations=True) == listed  # read from the captures
    _ended(storage, 2)
    latest = {"options": {"--lr": 0.2}, "positional": []}
    storage.reserve(SPEC, _claim(9), {"configuration": latest})
    assert storage.list_trials(configurations=True)[0]["configuration"] == latest


def _stored_by_an_older_kleio(storage) -> None:
    """Each execution as a Kleio that kept no configuration apart from the capture stored
    it (and still may, beside a newer one on the same database)."""
    if storage.url.startswith("sqlite:"):
        storage._db.execute("UPDATE executions SET configuration = NULL")
    else:
        storage._db.executions.update_many({}, {"$unset": {"configuration": ""}})


NOBODY = "ef" * 16  # an id no test reserves


def test_reads_of_an_id_that_names_no_trial_find_nothing(database_url: str):
    storage = open_storage(database_url)
    for verb in (storage.get_trial, storage.export_trial):
        with pytest.raises(TrialNotFound):
            verb(NOBODY)
    assert storage.capture(NOBODY) is None and storage.end_position(NOBODY) is None
    assert storage.candidates(NOBODY) == [] and storage.list_trials() == []
    assert storage.list_trials(configurations=True) == []
    assert storage.last_seq(NOBODY, 1, "p") == 0
    assert storage.logged_counts(NOBODY, [protocol.STATISTIC]) == {}
    assert storage.read_records(NOBODY, [protocol.STATISTIC]) == []
    assert storage.read_chunks(NOBODY, [protocol.STATISTIC]) == []
    assert list(storage.export_chunks([NOBODY])) == []
    assert storage.chunk_number(NOBODY, 1, "p", 1) is None


def test_writes_for_an_id_that_names_no_trial_change_nothing(database_url: str):
    storage = open_storage(database_url)
    appended = storage.append_chunks([_stats([1], trial=NOBODY)])
    assert (appended.inserted, appended.refused, appended.stored) == (0, {(NOBODY, 1)}, ())
    assert not storage.renew_lease(NOBODY, 1, 30)
    storage.start_execution(NOBODY, 1, 5)
    storage.end_execution(ExecutionEnd(NOBODY, 1, states.COMPLETED, 0, []))
    assert storage.expire_leases() == []
    assert storage.list_trials() == [] and storage.read_records(NOBODY, [protocol.STATISTIC]) == []


def test_a_full_id_resolves_to_itself_and_an_empty_one_to_nothing(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    assert storage.resolve_id(SPEC.id) == SPEC.id
    assert storage.resolve_id(SPEC.id.upper()) == SPEC.id
    for prefix in ("", SPEC.id + "0"):
        with pytest.raises(TrialNotFound):
            storage.resolve_id(prefix)


def test_tagging_again_changes_nothing(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    assert storage.set_tags(SPEC.id, ["a"], []) == ["a"]
    assert storage.set_tags(SPEC.id, ["a"], ["never-set"]) == ["a"]
    assert storage.set_tags(SPEC.id, [], []) == ["a"]
    assert storage.set_tags(SPEC.id, ["b"], ["b"]) == ["a"]  # a tag removed wins


def test_candidates_are_the_command_s_trial_and_change_branches_by_last_update(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1), {"run": 1})
    for branch_id, kind in (("cd" * 16, "change"), ("ce" * 16, SCRATCH)):
        branch = TrialSpec(
            id=branch_id,
            command=SPEC.command,
            identity={},
            cwd="/",
            user="u",
            parent=SPEC.id,
            root=SPEC.id,
            branch_kind=kind,
        )
        storage.reserve(branch, _claim(2), {"run": kind})
    _after(storage, storage.get_trial("ce" * 16)["updated"])
    _ended(storage, 1)  # the command's own trial is now the one updated last
    found = storage.candidates(SPEC.id)
    assert [(c["id"], c["status"], c["capture"]) for c in found] == [
        ("cd" * 16, states.RUNNING, {"run": "change"}),
        (SPEC.id, states.BROKEN, {"run": 1}),
    ]
    assert [(c["parent"], c["branch_kind"]) for c in found] == [(SPEC.id, "change"), (None, None)]


def test_records_are_counted_per_execution_up_to_a_position_to_the_chunk(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    storage.append_chunks([_stats([1, 2, 3]), _stats([0], seq=4, kind=protocol.OUTPUT)])
    _ended(storage, 1)
    storage.reserve(SPEC, _claim(2))
    storage.append_chunks([_stats([4, 5], execution=2)])
    both = [protocol.STATISTIC, protocol.OUTPUT]
    assert storage.logged_counts(SPEC.id, [protocol.STATISTIC]) == {1: 3, 2: 2}
    assert storage.logged_counts(SPEC.id, both) == {1: 4, 2: 2}
    first = storage.read_chunks(SPEC.id, [protocol.STATISTIC])[0]["position"]
    assert storage.logged_counts(SPEC.id, both, upto=first + 1) == {1: 3}  # the whole chunk
    assert storage.logged_counts(SPEC.id, both, upto=first - 1) == {}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _has_blob(storage, sha256: str) -> bool:
    """Whether the artifact is stored: both backends refuse one never stored alike."""
    try:
        return os.path.exists(storage.blob_path(sha256))
    except ArtifactMissing as missing:
        assert "is not in the journal's store" in str(missing)
        return False


def test_an_artifact_never_stored_is_missing_and_leaves_nothing_behind(database_url: str, tmp_path):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    with pytest.raises(ArtifactMissing, match="damaged"):
        storage.blob_path(_sha(b"never uploaded"))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_an_aborted_or_misordered_upload_stores_nothing(database_url: str, tmp_path):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    writer = storage.begin_blob("up")
    writer.write(0, b"half of it")
    writer.abort()
    assert not _has_blob(storage, _sha(b"half of it"))
    writer = storage.begin_blob("up")  # the same upload, started again
    writer.write(0, b"whole")
    with pytest.raises(BadRequest, match="offset"):
        writer.write(6, b"of it")  # a byte is missing
    writer.abort()
    writer = storage.begin_blob("up")
    writer.write(0, b"whole")
    writer.write(5, b" of it")
    assert writer.finish() == _sha(b"whole of it")
    with open(storage.blob_path(_sha(b"whole of it")), "rb") as handle:
        assert handle.read() == b"whole of it"


def test_an_empty_artifact_is_stored_too(database_url: str, tmp_path):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    assert storage.begin_blob("empty").finish() == _sha(b"")
    with open(storage.blob_path(_sha(b"")), "rb") as handle:
        assert handle.read() == b""


def test_what_was_written_outlives_closing(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    storage.append_chunks([_stats([1, 2])])
    storage.close()
    with pytest.raises(StorageError):
        storage.list_trials()
    reopened = open_storage(database_url)
    assert reopened.get_trial(SPEC.id)["status"] == states.RUNNING
    assert [r["body"]["v"] for r in reopened.read_records(SPEC.id, [protocol.STATISTIC])] == [1, 2]


def _journal_to_move(storage) -> None:
    storage.reserve(SPEC, _claim(1), {"run": 1})
    storage.append_chunks([_stats([1, 2]), _stats([0], seq=3, kind=protocol.OUTPUT)])
    _ended(storage, 1, states.INTERRUPTED, -15, ("SIGTERM",))
    storage.reserve(SPEC, _claim(2), {"run": 2})
    storage.append_chunks([_stats([3], execution=2)])
    _ended(storage, 2)
    storage.set_tags(SPEC.id, ["moved"], [])


def test_a_trial_moves_to_another_database_as_stored(database_url: str, another_database_url: str):
    source, target = open_storage(database_url), open_storage(another_database_url)
    _journal_to_move(source)
    exported = source.export_trial(SPEC.id)
    assert exported["captures"] == {1: {"run": 1}, 2: {"run": 2}}
    assert target.import_trial(exported)
    assert not target.import_trial(exported)  # it has it now: left as it is
    assert target.get_trial(SPEC.id) == source.get_trial(SPEC.id)
    assert target.export_trial(SPEC.id)["captures"] == exported["captures"]
    assert target.reserve(SPEC, _claim(3)).execution == 3  # the fencing token goes on


def _journal(storage) -> list[tuple[int, int, object]]:
    kinds = [protocol.STATISTIC, protocol.OUTPUT]
    return [(r["execution"], r["seq"], r["body"]) for r in storage.read_records(SPEC.id, kinds)]


def test_chunks_move_to_another_database_in_commit_order_once(
    database_url: str, another_database_url: str
):
    source, target = open_storage(database_url), open_storage(another_database_url)
    _journal_to_move(source)
    rows = list(source.export_chunks([SPEC.id, NOBODY]))
    assert [(r["execution"], r["seq"], r["kind"]) for r in rows] == [
        (1, 1, protocol.STATISTIC),
        (1, 3, protocol.OUTPUT),
        (2, 1, protocol.STATISTIC),
    ]
    assert [r["chunk"] for r in rows] == sorted(r["chunk"] for r in rows)
    mapping = target.import_chunks(rows)
    assert list(mapping) == [r["chunk"] for r in rows]
    assert list(mapping.values()) == sorted(mapping.values())
    for row in rows:
        key = (row["trial_id"], row["execution"], row["producer"], row["seq"])
        assert (source.chunk_number(*key), target.chunk_number(*key)) == (
            row["chunk"],
            mapping[row["chunk"]],
        )
    assert target.import_chunks(rows) == {} and target.import_chunks([]) == {}
    assert _journal(target) == _journal(source)


def test_a_trial_exported_while_running_is_resumable_where_it_is_imported(
    database_url: str, another_database_url: str, request: pytest.FixtureRequest
):
    """The import brings no lease: the trial runs nowhere in that database."""
    source, target = open_storage(database_url), open_storage(another_database_url)
    source.reserve(SPEC, _claim(1))
    assert target.import_trial(source.export_trial(SPEC.id))
    again = target.reserve(SPEC, _claim(2))
    assert (again.execution, again.previous_status) == (2, states.LOST)


def test_an_end_reported_twice_is_recorded_once(database_url: str):
    """The supervisor reports the end again when the daemon's reply did not come back."""
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    _ended(storage, 1, states.INTERRUPTED, -15, ("SIGTERM",))
    first = storage.get_trial(SPEC.id)
    _ended(storage, 1, states.INTERRUPTED, -15, ("SIGTERM",))
    assert storage.get_trial(SPEC.id) == first


def _artifact(sha256: str, seq: int = 1, trial: str = SPEC.id, execution: int = 1) -> Chunk:
    body = msgpack.packb([[protocol.ARTIFACT, {"filename": "f", "sha256": sha256, "size": 1}]])
    return Chunk(trial, execution, "p", seq, 1, protocol.ARTIFACT, body)


def _branch_of(parent: str, child: str, kind: str = "branch") -> TrialSpec:
    return TrialSpec(
        id=child,
        command=SPEC.command,
        identity={},
        cwd="/",
        user="u",
        parent=parent,
        root=child,
        branch_kind=kind,
        branch_point=None,
    )


def test_a_removed_trial_leaves_nothing_behind_and_its_id_starts_anew(database_url: str):
    storage = open_storage(database_url)
    other = TrialSpec(id="cd" * 16, command=["x"], identity={}, cwd="/", user="u")
    for spec in (SPEC, other):
        storage.reserve(spec, _claim(1), {"run": spec.id})
        storage.append_chunks(
            [
                _stats([1, 2], trial=spec.id),
                _stats([0], seq=3, kind=protocol.OUTPUT, trial=spec.id),
                _artifact(_sha(spec.id.encode()), seq=4, trial=spec.id),
            ]
        )
        storage.end_execution(ExecutionEnd(spec.id, 1, states.COMPLETED, 0, []))
        storage.set_tags(spec.id, ["kept"], [])
    kinds = [protocol.STATISTIC, protocol.OUTPUT, protocol.ARTIFACT]
    kept = (storage.get_trial(other.id), storage.read_records(other.id, kinds))
    storage.remove_trials([SPEC.id])
    for verb in (storage.get_trial, storage.resolve_id):
        with pytest.raises(TrialNotFound):
            verb(SPEC.id)
    assert storage.read_records(SPEC.id, kinds) == [] and storage.capture(SPEC.id) is None
    assert storage.logged_counts(SPEC.id, kinds) == {} and storage.candidates(SPEC.id) == []
    assert [t["id"] for t in storage.list_trials()] == [other.id]
    assert (storage.get_trial(other.id), storage.read_records(other.id, kinds)) == kept
    assert storage.artifact_hashes() == {_sha(other.id.encode())}
    again = storage.reserve(SPEC, _claim(2))  # the same command again: a new trial
    assert (again.execution, again.previous_status) == (1, None)
    trial = storage.get_trial(SPEC.id)
    assert (trial["tags"], [h["status"] for h in trial["history"]]) == ([], ["new", "running"])


def test_a_running_or_missing_trial_is_not_removed_and_nothing_is(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(7))
    with pytest.raises(AlreadyRunning, match="pid 7"):
        storage.remove_trials([SPEC.id])
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.INTERRUPTED, -2, ["SIGINT"]))
    with pytest.raises(TrialNotFound):
        storage.remove_trials([SPEC.id, NOBODY])
    before = storage.get_trial(SPEC.id)
    assert before["status"] == states.INTERRUPTED
    again = storage.reserve(SPEC, _claim(8))  # what was refused changed nothing
    assert (again.execution, again.previous_status) == (2, states.INTERRUPTED)


def test_a_trial_with_branches_is_removed_only_with_them(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    _ended(storage, 1)
    storage.reserve(_branch_of(SPEC.id, "cd" * 16), _claim(2))
    storage.end_execution(ExecutionEnd("cd" * 16, 1, states.COMPLETED, 0, []))
    storage.reserve(_branch_of("cd" * 16, "ce" * 16), _claim(3))
    storage.end_execution(ExecutionEnd("ce" * 16, 1, states.COMPLETED, 0, []))
    for partial in ([SPEC.id], [SPEC.id, "cd" * 16], ["cd" * 16]):
        with pytest.raises(BadRequest, match="has branches"):
            storage.remove_trials(partial)
    assert len(storage.list_trials()) == 3
    assert storage.reserve(SPEC, _claim(4)).execution == 2  # the refusal took nothing back
    _ended(storage, 2)
    storage.remove_trials(["ce" * 16, "cd" * 16])  # a branch without its parent: fine
    storage.reserve(_branch_of(SPEC.id, "cf" * 16), _claim(5))
    storage.end_execution(ExecutionEnd("cf" * 16, 1, states.COMPLETED, 0, []))
    storage.remove_trials(["cf" * 16, SPEC.id])  # in any order
    assert storage.list_trials() == []


def test_a_removed_trial_takes_no_more_records_and_no_new_branch(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    _ended(storage, 1)
    storage.remove_trials([SPEC.id])
    appended = storage.append_chunks([_stats([9], seq=5)])  # a late resend of execution 1
    assert (appended.inserted, appended.refused) == (0, {(SPEC.id, 1)})
    with pytest.raises(TrialNotFound, match="removed"):
        storage.reserve(_branch_of(SPEC.id, "cd" * 16), _claim(2))
    assert storage.list_trials() == []
    assert storage.read_records(SPEC.id, [protocol.STATISTIC]) == []


def _remove_or_branch(url: str, barrier, results, index: int) -> None:
    storage = open_storage(url)
    barrier.wait()
    try:
        if index % 2:
            storage.reserve(_branch_of(SPEC.id, f"{index:02d}" * 16), _claim(index))
        else:
            storage.remove_trials([SPEC.id])
        results.put("done")
    except (BadRequest, TrialNotFound, AlreadyRunning):
        results.put("refused")


@pytest.mark.parametrize("round_", ROUNDS)
def test_removing_a_trial_while_others_branch_it_leaves_no_branch_without_parent(
    database_url: str, round_: int
):
    """Daemons of several machines at once: three remove the trial, three branch it."""
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    _ended(storage, 1)
    _outcomes_of_six(database_url, _remove_or_branch)  # all may be refused, seeing the others
    trials = {t["id"]: t for t in storage.list_trials()}
    for trial in trials.values():
        assert trial["parent"] is None or trial["parent"] in trials
        assert trial["status"] in states.ALL  # none left half-removed
        assert storage.get_trial(trial["id"])["history"]
    if SPEC.id in trials:  # kept: whole, and it runs again as it would have
        assert storage.reserve(SPEC, _claim(2)).execution == 2
        _ended(storage, 2)
    for branch in set(trials) - {SPEC.id}:  # each branch made runs
        storage.end_execution(ExecutionEnd(branch, 1, states.COMPLETED, 0, []))
    storage.remove_trials(list(trials))
    assert storage.list_trials() == []


def test_a_removal_cut_short_changes_nothing(database_url: str, monkeypatch):
    storage = open_storage(database_url)
    storage.reserve(SPEC, _claim(1))
    storage.append_chunks([_stats([1, 2])])
    _ended(storage, 1)
    before = storage.get_trial(SPEC.id)

    def cut_short(*args: object) -> None:
        raise StorageError("the database went away")

    backend = "sqlite" if database_url.startswith("sqlite") else "mongo"
    monkeypatch.setattr(f"kleiod.storage.{backend}_removal.outside_branches", cut_short)
    with pytest.raises(StorageError, match="went away"):
        storage.remove_trials([SPEC.id])
    monkeypatch.undo()
    assert storage.get_trial(SPEC.id) == before
    assert [r["body"]["v"] for r in storage.read_records(SPEC.id, [protocol.STATISTIC])] == [1, 2]
    assert storage.reserve(SPEC, _claim(2)).execution == 2  # its fencing token as it was


def test_mongodb_a_removal_killed_midway_is_finished_by_the_next_once_stale(
    mongodb_server: str, monkeypatch
):
    """A daemon killed while it removed a trial (on SQLite, one transaction: nothing)."""
    from kleiod.storage import mongo_removal

    storage = open_storage(f"{mongodb_server}/kleio_test_{os.urandom(6).hex()}")
    storage.reserve(SPEC, _claim(1))
    storage.append_chunks([_stats([1, 2])])
    _ended(storage, 1)

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # between the marks and the deletions

    monkeypatch.setattr(mongo_removal.MongoRemoval, "_parents_first", killed)
    with pytest.raises(KeyboardInterrupt):
        storage.remove_trials([SPEC.id])
    monkeypatch.undo()
    assert storage.get_trial(SPEC.id)["status"] == "removing"
    with pytest.raises(TrialNotFound, match="being removed"):
        storage.reserve(SPEC, _claim(2))
    with pytest.raises(TrialNotFound, match="by another kleio rm"):
        storage.remove_trials([SPEC.id])  # that removal may still be under way
    monkeypatch.setattr(mongo_removal, "STALE_SECONDS", -60.0)
    storage.remove_trials([SPEC.id])
    assert storage.list_trials() == [] and storage.read_records(SPEC.id, [protocol.STATISTIC]) == []


def test_every_artifact_record_names_its_bytes(database_url: str):
    storage = open_storage(database_url)
    assert storage.artifact_hashes() == set()
    storage.reserve(SPEC, _claim(1))
    body = msgpack.packb(
        [[protocol.ARTIFACT, {"filename": n, "sha256": _sha(n.encode()), "size": 1}] for n in "ab"]
    )
    storage.append_chunks(
        [
            Chunk(SPEC.id, 1, "p", 1, 2, protocol.ARTIFACT, body),
            _artifact(_sha(b"a"), seq=3),
            _stats([1], seq=4),
        ]
    )
    assert storage.artifact_hashes() == {_sha(b"a"), _sha(b"b")}


def _stored(storage, payload: bytes) -> str:
    writer = storage.begin_blob("up")
    writer.write(0, payload)
    return str(writer.finish())


def test_bytes_are_deleted_unless_stored_again_since(database_url: str, tmp_path):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    assert storage.list_blobs() == []
    sha = _stored(storage, b"weights")
    kept = _stored(storage, b"other")
    (blob,) = [b for b in storage.list_blobs() if b.sha256 == sha]
    assert blob.size == len(b"weights")
    assert storage.delete_blob(sha, blob.stored) is None  # stored at that moment: kept
    _after(storage, blob.stored)
    cutoff = storage.clock()
    _stored(storage, b"weights")  # a trial logs the same bytes again, about to record them
    assert storage.delete_blob(sha, cutoff) is None and _has_blob(storage, sha)
    (again,) = [b for b in storage.list_blobs() if b.sha256 == sha]
    assert again.stored >= cutoff
    _after(storage, again.stored)
    storage.blob_path(sha)  # a local copy (MongoDB's cache) goes with the bytes
    assert storage.delete_blob(sha, storage.clock()) == len(b"weights")
    assert not _has_blob(storage, sha)
    assert [b.sha256 for b in storage.list_blobs()] == [kept]
    assert storage.delete_blob(sha, storage.clock()) is None  # gone already
    assert _stored(storage, b"weights") == sha and _has_blob(storage, sha)  # stored anew
    with open(storage.blob_path(sha), "rb") as handle:
        assert handle.read() == b"weights"
    assert not list((tmp_path / "cache").rglob("*.gc"))
