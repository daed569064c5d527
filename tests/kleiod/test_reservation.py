"""Reservation is atomic in the database: racing processes on one SQLite file, one winner."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import msgpack
import pytest

from kleio_client import protocol
from kleiod import states
from kleiod.errors import AlreadyRunning, TrialCompleted
from kleiod.storage.base import Chunk, Claim, ExecutionEnd, TrialSpec
from kleiod.storage.sqlite import SQLiteStorage

SPEC = TrialSpec(id="ab" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")


def _claim(pid: int, lease: float = 30.0) -> Claim:
    now = time.time()
    return Claim(host="h", pid=pid, now=now, lease_until=now + lease)


def _race(path: str, barrier, results, index: int) -> None:
    storage = SQLiteStorage(Path(path))
    barrier.wait()
    try:
        storage.reserve(SPEC, _claim(1000 + index))
        results.put("won")
    except AlreadyRunning:
        results.put("refused")


@pytest.mark.parametrize("round_", range(3))
def test_processes_racing_on_one_file_let_exactly_one_run(tmp_path: Path, round_: int):
    path = str(tmp_path / "j.sqlite")
    SQLiteStorage(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, barrier, results, i)) for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert outcomes == ["refused"] * 5 + ["won"]


def test_statuses_and_the_execution_number_fencing_token(tmp_path: Path):
    storage = SQLiteStorage(tmp_path / "j.sqlite")
    first = storage.reserve(SPEC, _claim(1))
    assert (first.execution, first.previous_status) == (1, None)
    assert storage.renew_lease(SPEC.id, 1, time.time() + 30)
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.BROKEN, 1, [], time.time()))
    second = storage.reserve(SPEC, _claim(2))
    assert (second.execution, second.previous_status) == (2, states.BROKEN)
    assert not storage.renew_lease(SPEC.id, 1, time.time() + 30)  # not the owner any more
    stale = Chunk(SPEC.id, 1, "p", 1, 1, protocol.STATISTIC,
                  msgpack.packb([[protocol.STATISTIC, {"late": True}]]))
    assert storage.append_chunks([stale]).refused == {(SPEC.id, 1)}  # fenced
    assert storage.read_records(SPEC.id, [protocol.STATISTIC]) == []
    storage.end_execution(ExecutionEnd(SPEC.id, 2, states.COMPLETED, 0, [], time.time()))
    with pytest.raises(TrialCompleted):
        storage.reserve(SPEC, _claim(3))


def test_an_expired_lease_makes_the_trial_lost_and_resumable(tmp_path: Path):
    storage = SQLiteStorage(tmp_path / "j.sqlite")
    storage.reserve(SPEC, _claim(1, lease=-1))
    again = storage.reserve(SPEC, _claim(2))
    assert (again.execution, again.previous_status) == (2, states.LOST)
    history = [h["status"] for h in storage.get_trial(SPEC.id)["history"]]
    assert history == ["new", "running", "lost", "running"]


def test_chunks_are_idempotent_and_positions_follow_commit_order(tmp_path: Path):
    storage = SQLiteStorage(tmp_path / "j.sqlite")
    storage.reserve(SPEC, _claim(1))

    def chunk(producer: str, seq: int, values: list[int], kind: str = protocol.STATISTIC) -> Chunk:
        body = msgpack.packb([[kind, {"v": v}] for v in values])
        return Chunk(SPEC.id, 1, producer, seq, len(values), kind, body)

    assert storage.append_chunks([chunk("a", 1, [1, 2]), chunk("b", 1, [10])]).inserted == 3
    assert storage.append_chunks([chunk("a", 1, [1, 2]), chunk("a", 3, [3])]).inserted == 1
    # a resend cut at other boundaries stores only what is new
    assert storage.append_chunks([chunk("a", 2, [2, 3, 4, 5])]).inserted == 2
    assert storage.append_chunks([chunk("b", 1, [10, 11])]).inserted == 1
    records = storage.read_records(SPEC.id, [protocol.STATISTIC])
    assert [r["body"]["v"] for r in records] == [1, 2, 10, 3, 4, 5, 11]
    assert [r["seq"] for r in records] == [1, 2, 1, 3, 4, 5, 2]
    positions = [r["position"] for r in records]
    assert positions == sorted(positions) and len(set(positions)) == 7


def test_expired_leases_are_swept_to_lost(tmp_path: Path):
    storage = SQLiteStorage(tmp_path / "j.sqlite")
    storage.reserve(SPEC, _claim(1, lease=-1))
    assert storage.expire_leases(time.time()) == [SPEC.id]
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.LOST
    assert trial["executions"][0]["status"] == states.LOST
    # alive after all (a paused machine): its heartbeat takes it back, as nobody took over
    assert storage.renew_lease(SPEC.id, 1, time.time() + 30)
    assert storage.get_trial(SPEC.id)["status"] == states.RUNNING
    storage.expire_leases(time.time() + 60)
    # its end, reported late, is what happened: it completed
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, [], time.time()))
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.COMPLETED
    assert trial["executions"][0]["status"] == states.COMPLETED


def test_a_lost_execution_taken_over_stays_fenced(tmp_path: Path):
    storage = SQLiteStorage(tmp_path / "j.sqlite")
    storage.reserve(SPEC, _claim(1, lease=-1))
    storage.expire_leases(time.time())
    storage.reserve(SPEC, _claim(2))  # execution 2 takes over
    assert not storage.renew_lease(SPEC.id, 1, time.time() + 30)
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.COMPLETED, 0, [], time.time()))
    trial = storage.get_trial(SPEC.id)
    assert trial["status"] == states.RUNNING  # execution 2's
    assert [e["status"] for e in trial["executions"]] == [states.COMPLETED, states.RUNNING]
