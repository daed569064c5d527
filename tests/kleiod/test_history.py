"""A trial's effective history on a real SQLite journal: resume points cut what came
before, an execution that logs without loading restarted from scratch, branches read
their parent's history up to the branch point; branch points found by key; the same
history as segments of stored chunks."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from kleio_client import protocol
from kleiod import history
from kleiod.errors import BadRequest
from kleiod.history import ExecutionView
from kleiod.storage.base import Chunk, Claim, TrialSpec
from kleiod.storage.sqlite import SQLiteStorage

SPEC = TrialSpec(id="ab" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")
STAT, ARTIFACT, LOAD = protocol.STATISTIC, protocol.ARTIFACT, protocol.LOAD


@pytest.fixture
def storage(tmp_path) -> SQLiteStorage:
    return SQLiteStorage(tmp_path / "journal.sqlite")


def _begin(storage, spec: TrialSpec = SPEC) -> int:
    """A new execution (the last one's lease ends at once: it is taken over)."""
    return storage.reserve(spec, Claim("h", 1, -1)).execution


def _log(
    storage, execution: int, kind: str, *bodies: dict[str, Any], trial: str = SPEC.id
) -> list[int]:
    """One chunk of records; their positions."""
    producer = f"p/{kind}"
    seq = storage.last_seq(trial, execution, producer) + 1
    packed = msgpack.packb([[kind, body] for body in bodies])
    appended = storage.append_chunks(
        [Chunk(trial, execution, producer, seq, len(bodies), kind, packed)]
    )
    ((position, _),) = appended.stored
    return [position + index for index in range(len(bodies))]


def _ckpt(epoch: int) -> dict[str, Any]:
    return {
        "filename": "ckpt.pt",
        "sha256": f"{epoch:064d}",
        "size": 1,
        "metadata": {"epoch": epoch},
    }


def _load(position: int) -> dict[str, Any]:
    return {"filename": "ckpt.pt", "sha256": "0" * 64, "artifact_position": position}


def _seen(records: list[dict[str, Any]]) -> list[tuple[int, str, Any]]:
    """(execution, kind, epoch) of each record."""
    return [(r["execution"], r["kind"], history.value_of(r, "epoch")) for r in records]


def _first_run(storage) -> int:
    """The first execution: epochs 0 and 1, the checkpoint of epoch 1, epoch 2, then a
    crash; the checkpoint's position."""
    assert _begin(storage) == 1
    _log(storage, 1, STAT, {"epoch": 0}, {"epoch": 1})
    (ckpt,) = _log(storage, 1, ARTIFACT, _ckpt(1))
    _log(storage, 1, STAT, {"epoch": 2})
    return ckpt


def test_a_resume_from_a_checkpoint_supersedes_what_came_after_it(storage):
    ckpt = _first_run(storage)
    assert _begin(storage) == 2
    _log(storage, 2, LOAD, _load(ckpt))
    _log(storage, 2, STAT, {"epoch": 2}, {"epoch": 3})
    records, views = history.walk(storage, SPEC.id)
    assert _seen(records) == [
        (1, STAT, 0),
        (1, STAT, 1),
        (1, ARTIFACT, 1),
        (2, STAT, 2),
        (2, STAT, 3),
    ]
    assert views == [ExecutionView(1, None, 4, True), ExecutionView(2, ckpt, 2, False)]
    assert all(r["trial"] == SPEC.id for r in records)


def test_an_execution_that_logs_without_loading_restarted_from_scratch(storage):
    _first_run(storage)
    _log(storage, _begin(storage), STAT, {"epoch": 0})
    assert _seen(history.effective(storage, SPEC.id)) == [(2, STAT, 0)]
    assert history.walk(storage, SPEC.id)[1][-1] == ExecutionView(2, None, 1, True)


def test_an_execution_that_neither_loaded_nor_logged_hides_nothing(storage):
    _first_run(storage)
    before = history.effective(storage, SPEC.id)
    _begin(storage)  # crashed on import
    assert history.effective(storage, SPEC.id) == before
    assert len(before) == 4


def test_loading_its_own_checkpoint_never_moves_an_execution_s_resume_point(storage):
    _first_run(storage)
    (own,) = _log(storage, _begin(storage), ARTIFACT, _ckpt(0))
    _log(storage, 2, LOAD, _load(own))
    assert history.walk(storage, SPEC.id)[1][-1] == ExecutionView(2, None, 1, True)
    assert _seen(history.effective(storage, SPEC.id)) == [(2, ARTIFACT, 0)]


def test_an_execution_looking_for_its_checkpoint_sees_what_came_before(storage):
    """A line logged before the checkpoint is loaded does not hide that checkpoint."""
    _first_run(storage)
    _log(storage, _begin(storage), STAT, {"epoch": -1})
    looking = history.effective(storage, SPEC.id, loading=2, statistics=False)
    assert _seen(looking) == [(1, ARTIFACT, 1)]
    assert len(history.effective(storage, SPEC.id, loading=2)) == 5
    assert _seen(history.effective(storage, SPEC.id)) == [(2, STAT, -1)]


def test_the_history_as_it_stood_at_a_position(storage):
    ckpt = _first_run(storage)
    assert _seen(history.effective(storage, SPEC.id, upto=ckpt)) == [
        (1, STAT, 0),
        (1, STAT, 1),
        (1, ARTIFACT, 1),
    ]
    assert _seen(history.effective(storage, SPEC.id, upto=ckpt - 1)) == [(1, STAT, 0), (1, STAT, 1)]


def _child(branch_point: int) -> TrialSpec:
    return TrialSpec(
        id="cd" * 16,
        command=SPEC.command,
        identity={},
        cwd="/",
        user="u",
        parent=SPEC.id,
        root="cd" * 16,
        branch_kind="branch",
        branch_point=branch_point,
    )


def test_a_branch_reads_its_parent_up_to_the_branch_point(storage):
    ckpt = _first_run(storage)
    child = _child(ckpt)
    assert _begin(storage, child) == 1
    assert _seen(history.effective(storage, child.id)) == [
        (1, STAT, 0),
        (1, STAT, 1),
        (1, ARTIFACT, 1),
    ]
    _log(storage, 1, LOAD, _load(ckpt), trial=child.id)
    _log(storage, 1, STAT, {"epoch": 20}, trial=child.id)
    _log(storage, 1, STAT, {"epoch": 3})  # the parent goes on: the child's view does not
    assert _seen(history.effective(storage, child.id)) == [
        (1, STAT, 0),
        (1, STAT, 1),
        (1, ARTIFACT, 1),
        (1, STAT, 20),
    ]
    assert [r["trial"] for r in history.effective(storage, child.id)] == [SPEC.id] * 3 + [child.id]


def test_a_branch_that_loads_nothing_inherits_nothing(storage):
    ckpt = _first_run(storage)
    _begin(storage, _child(ckpt))
    _log(storage, 1, STAT, {"epoch": 0}, trial="cd" * 16)
    assert [r["trial"] for r in history.effective(storage, "cd" * 16)] == ["cd" * 16]


def test_artifacts_are_found_by_filename_and_metadata(storage):
    _begin(storage)
    _log(storage, 1, ARTIFACT, _ckpt(1), _ckpt(2), {**_ckpt(2), "filename": "other"})
    found = history.effective(storage, SPEC.id)
    assert [r["body"]["metadata"]["epoch"] for r in history.artifacts(found, "ckpt.pt", {})] == [
        1,
        2,
    ]
    assert [r["body"]["filename"] for r in history.artifacts(found, None, {"epoch": 2})] == [
        "ckpt.pt",
        "other",
    ]
    assert history.artifacts(found, "ckpt.pt", {"epoch": 3}) == []


def _stepped(storage) -> list[dict[str, Any]]:
    _begin(storage)
    _log(storage, 1, STAT, {"epoch": 8, "loss": 1.0}, {"epoch": 10, "loss": 0.5})
    _log(storage, 1, ARTIFACT, _ckpt(10))
    _log(storage, 1, STAT, {"epoch": 12, "note": "x"})
    return history.effective(storage, SPEC.id)


def test_a_branch_point_is_the_last_record_with_the_value_else_the_greatest_below(storage):
    records = _stepped(storage)
    positions = [r["position"] for r in records]
    assert history.branch_point(records, "epoch", 10) == positions[2]  # the checkpoint
    assert history.branch_point(records, "epoch", 11) == positions[2]
    assert history.branch_point(records, "epoch", 8.5) == positions[0]
    assert history.branch_point(records, "loss", 0.5) == positions[1]
    assert history.branch_point(records, None, None) == positions[-1]
    assert history.branch_point([], None, None) is None


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("step", 1, "no record has the key 'step'; keys: epoch, loss, note"),
        ("epoch", 7, "no record has epoch <= 7"),
        ("epoch", "10", "no record has epoch <= '10'"),  # a string is not compared with numbers
    ],
)
def test_a_branch_point_no_record_gives_is_refused(storage, key, value, says):
    with pytest.raises(BadRequest, match=says):
        history.branch_point(_stepped(storage), key, value)


def _expanded(segments: list[dict[str, Any]]) -> list[Any]:
    return [pair[1] for s in segments for pair in msgpack.unpackb(s["body"])[s["start"] : s["end"]]]


def test_statistic_segments_are_the_effective_statistics_cut_to_the_record(storage):
    ckpt = _first_run(storage)
    _log(storage, _begin(storage), LOAD, _load(ckpt))
    _log(storage, 2, STAT, {"epoch": 2})
    statistics = [r["body"] for r in history.effective(storage, SPEC.id) if r["kind"] == STAT]
    assert _expanded(history.statistic_segments(storage, SPEC.id)) == statistics
    first = history.effective(storage, SPEC.id)[0]["position"]
    _begin(storage, _child(first))  # branched after epoch 0, inside the first chunk
    (segment,) = history.statistic_segments(storage, "cd" * 16)
    assert (segment["trial"], segment["start"], segment["end"]) == (SPEC.id, 0, 1)
    assert _expanded([segment]) == [{"epoch": 0}]
    bare = history.statistic_segments(storage, SPEC.id, bodies=False)
    assert [s["body"] for s in bare] == [None, None]


def test_the_end_of_the_effective_history_is_its_last_record_of_either_kind(storage):
    _begin(storage)
    assert history.end_of(storage, SPEC.id) is None
    (stat,) = _log(storage, 1, STAT, {"epoch": 0})
    assert history.end_of(storage, SPEC.id) == stat
    (ckpt,) = _log(storage, 1, ARTIFACT, _ckpt(0))
    assert history.end_of(storage, SPEC.id) == ckpt
    _log(storage, 1, protocol.OUTPUT, {"text": "not history"})
    assert history.end_of(storage, SPEC.id) == ckpt
