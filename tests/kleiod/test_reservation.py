"""Which trial a command runs: resume the candidate whose fingerprints match, branch when a
change is allowed (at the end of the history, with an id both machines compute alike),
refuse otherwise with what changed; and a new ``kleio branch`` child checked against its
parent.  On a real SQLite journal."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgpack
import pytest

from kleio_client import protocol
from kleiod import fingerprint, reservation, states
from kleiod.errors import AlreadyRunning, ChangeRefused, TrialNotFound
from kleiod.fingerprint import Fields
from kleiod.reservation import Allowed, Request
from kleiod.storage.base import Chunk, Claim, ExecutionEnd, Reservation, TrialSpec
from kleiod.storage.sqlite import SQLiteStorage

SPEC = TrialSpec(id="ab" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")
NO_CHANGE = Allowed()
ANY_CHANGE = Allowed(code=True, environment=True)


def _capture(
    commit: str = "a" * 40, python: str = "3.11.4", untracked: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {
        "code": {"git": True, "commit": commit, "patch": "", "untracked": list(untracked)},
        "environment": {
            "python": {"version": python},
            "os": "Linux",
            "architecture": "x86_64",
            "packages": {},
        },
    }


def _run(
    storage,
    capture: dict[str, Any],
    allowed: Allowed = NO_CHANGE,
    pid: int = 1,
    spec: TrialSpec = SPEC,
    exact: bool = False,
) -> reservation.Outcome:
    request = Request(spec, capture, Fields(), allowed, exact)
    return reservation.reserve(storage, request, Claim("h", pid, 30))


def _end(storage, booked: Reservation, status: str = states.BROKEN) -> None:
    storage.end_execution(ExecutionEnd(booked.trial_id, booked.execution, status, 1, []))


def _tick(storage) -> None:
    """Wait for the journal's clock (milliseconds) to move: what follows is updated later."""
    start, deadline = storage.clock(), time.monotonic() + 10
    while storage.clock() <= start:
        assert time.monotonic() < deadline, "the journal's clock stands still"


@pytest.fixture
def storage(tmp_path) -> SQLiteStorage:
    return SQLiteStorage(tmp_path / "journal.sqlite")


def test_a_new_command_creates_its_trial(storage):
    outcome = _run(storage, _capture())
    assert outcome == reservation.Outcome(Reservation(SPEC.id, 1, None))
    assert storage.capture(SPEC.id) == _capture()


def test_the_same_code_and_environment_resume_the_trial(storage):
    _end(storage, _run(storage, _capture()).reservation)
    again = _run(storage, _capture(), pid=2)
    assert (again.reservation.trial_id, again.reservation.execution) == (SPEC.id, 2)
    assert (again.reservation.previous_status, again.branched_from) == (states.BROKEN, None)


@pytest.mark.parametrize(
    "capture, kinds, options",
    [
        (_capture(commit="b" * 40), "code", "--allow-code-change or --allow-any-change"),
        (_capture(python="3.12.0"), "environment", "--allow-env-change or --allow-any-change"),
        (_capture(commit="b" * 40, python="3.12.0"), "code and environment", "--allow-any-change"),
    ],
)
def test_a_change_not_allowed_is_refused_with_what_changed(storage, capture, kinds, options):
    _end(storage, _run(storage, _capture()).reservation)
    with pytest.raises(ChangeRefused) as refusal:
        _run(storage, capture, pid=2)
    message = str(refusal.value)
    assert message.startswith(
        f"kleio: the {kinds} changed since trial {SPEC.id[:12]} last ran; not resuming it:"
    )
    assert f"run again with {options} to branch the trial" in message
    assert ("  code: commit aaaaaaa -> bbbbbbb" in message) == ("code" in kinds)
    assert ("  environment: python 3.11.4 -> 3.12.0" in message) == ("environment" in kinds)
    assert storage.get_trial(SPEC.id)["executions"][-1]["number"] == 1  # nothing reserved


def test_a_change_allowed_only_for_the_environment_still_refuses_code(storage):
    _end(storage, _run(storage, _capture()).reservation)
    with pytest.raises(ChangeRefused, match="the code changed"):
        _run(storage, _capture(commit="b" * 40), Allowed(environment=True), pid=2)


def _logged(storage, execution: int, values: list[int]) -> None:
    body = msgpack.packb([[protocol.STATISTIC, {"v": v}] for v in values])
    storage.append_chunks(
        [Chunk(SPEC.id, execution, "p", 1, len(values), protocol.STATISTIC, body)]
    )


def test_an_allowed_change_branches_at_the_end_of_the_history(storage):
    _logged(storage, _run(storage, _capture()).reservation.execution, [1, 2, 3])
    _end(storage, Reservation(SPEC.id, 1, None))
    changed = _capture(commit="b" * 40)
    outcome = _run(storage, changed, Allowed(code=True), pid=2)
    code, environment = fingerprint.fingerprints(changed, Fields())
    branch_id = hashlib.sha256(f"change\0{SPEC.id}\0{code}\0{environment}".encode()).hexdigest()[
        :32
    ]
    assert outcome.reservation == Reservation(branch_id, 1, None)
    assert (outcome.branched_from, outcome.changes) == (SPEC.id, ("commit aaaaaaa -> bbbbbbb",))
    branch = storage.get_trial(branch_id)
    assert (branch["parent"], branch["root"], branch["branch_kind"]) == (SPEC.id, SPEC.id, "change")
    assert branch["branch_point"] == storage.end_position(SPEC.id) is not None


def test_the_branch_resumes_with_the_changed_code_and_the_original_with_its_own(storage):
    _end(storage, _run(storage, _capture()).reservation)
    branched = _run(storage, _capture(commit="b" * 40), ANY_CHANGE, pid=2)
    _end(storage, branched.reservation)
    again = _run(storage, _capture(commit="b" * 40), pid=3)  # matches: no flag needed
    assert (again.reservation.trial_id, again.reservation.execution) == (
        branched.reservation.trial_id,
        2,
    )
    assert (again.branched_from, again.changes) == (None, ())
    _end(storage, again.reservation)
    original = _run(storage, _capture(), pid=4)
    assert (original.reservation.trial_id, original.reservation.execution) == (SPEC.id, 2)


def test_two_machines_branching_at_once_converge_on_one_branch(storage):
    _end(storage, _run(storage, _capture()).reservation)
    first = _run(storage, _capture(commit="b" * 40), ANY_CHANGE, pid=2)
    with pytest.raises(AlreadyRunning, match=first.reservation.trial_id[:12]):
        _run(storage, _capture(commit="b" * 40), ANY_CHANGE, pid=3)


def test_a_refusal_names_the_branches_that_do_not_match_either(storage):
    _end(storage, _run(storage, _capture()).reservation)
    _tick(storage)
    branch = _run(storage, _capture(commit="b" * 40), ANY_CHANGE, pid=2)
    _end(storage, branch.reservation, states.INTERRUPTED)
    with pytest.raises(ChangeRefused) as refusal:
        _run(storage, _capture(commit="c" * 40), pid=3)
    latest = branch.reservation.trial_id[:12]
    assert f"since trial {latest} last ran" in str(refusal.value)
    assert (
        f"none of its branches matches either: {SPEC.id[:12]} (broken), {latest} (interrupted)"
    ) in str(refusal.value)


def test_several_matching_candidates_resume_the_one_used_last(storage):
    _end(storage, _run(storage, _capture()).reservation)
    _tick(storage)
    branch = _run(storage, _capture(commit="b" * 40), ANY_CHANGE, pid=2)
    _end(storage, branch.reservation)
    # the branch's capture changes back to the original's: both match now
    storage.reserve(
        TrialSpec(branch.reservation.trial_id, SPEC.command, {}, "/", "u"),
        Claim("h", 3, 30),
        _capture(),
    )
    storage.end_execution(ExecutionEnd(branch.reservation.trial_id, 2, states.BROKEN, 1, []))
    assert _run(storage, _capture(), pid=4).reservation.trial_id == branch.reservation.trial_id


def test_a_trial_that_captured_nothing_resumes_with_anything(storage):
    storage.reserve(SPEC, Claim("h", 1, 30))  # no capture (an older CLI)
    storage.end_execution(ExecutionEnd(SPEC.id, 1, states.BROKEN, 1, []))
    assert _run(storage, _capture(), pid=2).reservation.execution == 2


def _written(path: str, sha256: str, mtime: float) -> dict[str, Any]:
    return {"path": path, "sha256": sha256, "kind": "code", "mtime": mtime}


def test_untracked_files_the_trial_wrote_itself_are_no_change(storage):
    _run(storage, _capture())
    ran = storage.get_trial(SPEC.id)["executions"][0]
    _end(storage, Reservation(SPEC.id, 1, None))
    wrote = _capture(untracked=(_written("generated.py", "1" * 64, ran["start"]),))
    assert _run(storage, wrote, pid=2).reservation == Reservation(SPEC.id, 2, states.BROKEN)
    _end(storage, Reservation(SPEC.id, 2, None))
    by_the_user = _capture(untracked=(_written("mine.py", "2" * 64, ran["start"] - 3600),))
    with pytest.raises(ChangeRefused, match="untracked file mine.py added"):
        _run(storage, by_the_user, pid=3)


def test_an_untracked_file_the_trial_rewrote_is_no_change(storage):
    before = _capture(untracked=(_written("state.py", "1" * 64, 1.0),))
    _run(storage, before)
    ran = storage.get_trial(SPEC.id)["executions"][0]
    _end(storage, Reservation(SPEC.id, 1, None))
    rewritten = _capture(untracked=(_written("state.py", "2" * 64, ran["start"]),))
    assert _run(storage, rewritten, pid=2).reservation.execution == 2


def _resource(storage, path: str, sha256: str) -> None:
    body = msgpack.packb([[protocol.RESOURCE, {"path": path, "sha256": sha256}]])
    storage.append_chunks([Chunk(SPEC.id, 1, "r", 1, 1, protocol.RESOURCE, body)])


def test_a_resource_the_trial_logged_that_changed_is_an_environment_change(storage):
    _run(storage, _capture())
    _resource(storage, "data.csv", "1" * 64)
    assert reservation.logged_resources(storage, SPEC.id) == {"data.csv": "1" * 64}
    _end(storage, Reservation(SPEC.id, 1, None))
    same = {**_capture(), "resources": {"data.csv": "1" * 64, "unrelated": "9" * 64}}
    assert _run(storage, same, pid=2).reservation.execution == 2
    _end(storage, Reservation(SPEC.id, 2, None))
    with pytest.raises(ChangeRefused, match="environment: resource data.csv changed"):
        _run(storage, {**_capture(), "resources": {"data.csv": "2" * 64}}, pid=3)


def _imported(storage, execution: int, seq: int, files: dict[str, str]) -> None:
    """A process's report of the files it ran, journaled as the daemon journals it."""
    body = msgpack.packb([[protocol.IMPORTED, {"files": files}]])
    storage.append_chunks(
        [Chunk(SPEC.id, execution, "p/imported", seq, 1, protocol.IMPORTED, body)]
    )


def _now(commit: str = "a" * 40, **files: str | None) -> dict[str, Any]:
    """A capture with the CLI's hashes, now, of the files the trial ran (``model_py``)."""
    return {
        **_capture(commit=commit),
        "imported": {k.replace("_", "."): v for k, v in files.items()},
    }


def test_the_files_the_trial_ran_are_compared_by_content(storage):
    _run(storage, _capture())
    _imported(storage, 1, 1, {"train.py": "1" * 64})  # at its first record
    _imported(storage, 1, 2, {"model.py": "2" * 64})  # at exit: imported late
    assert reservation.imported_files(storage, SPEC.id) == {
        "model.py": "2" * 64,
        "train.py": "1" * 64,
    }
    _end(storage, Reservation(SPEC.id, 1, None))
    elsewhere = _now("b" * 40, train_py="1" * 64, model_py="2" * 64, notes_md="9" * 64)
    assert _run(storage, elsewhere, pid=2).reservation == Reservation(SPEC.id, 2, states.BROKEN)
    _end(storage, Reservation(SPEC.id, 2, None))
    edited = _now("b" * 40, train_py="1" * 64, model_py="3" * 64)
    with pytest.raises(ChangeRefused) as refusal:
        _run(storage, edited, pid=3)
    assert "  code: file model.py changed\n" in str(refusal.value)
    assert "commit" not in str(refusal.value)
    with pytest.raises(ChangeRefused, match="code: file model.py removed"):
        _run(storage, _now(train_py="1" * 64, model_py=None), pid=3)


def test_without_the_files_hashed_now_the_fallback_counts(storage):
    """Outside git now the CLI hashes nothing: commit and patch are compared instead."""
    _run(storage, _capture())
    _imported(storage, 1, 1, {"train.py": "1" * 64})
    _end(storage, Reservation(SPEC.id, 1, None))
    with pytest.raises(ChangeRefused, match="code: commit aaaaaaa -> bbbbbbb"):
        _run(storage, {**_capture(commit="b" * 40), "imported": None}, pid=2)


def test_each_execution_s_report_is_its_own(storage):
    _end(storage, _run(storage, _capture()).reservation)
    _imported(storage, 1, 1, {"train.py": "1" * 64})
    assert reservation.imported_files(storage, SPEC.id, execution=2) is None
    assert reservation.imported_files(storage, SPEC.id, execution=1) == {"train.py": "1" * 64}
    assert reservation.imported_files(storage, "ef" * 16) is None


def test_a_branch_for_a_changed_file_is_selected_by_its_code_next_time(storage):
    _run(storage, _capture())
    _imported(storage, 1, 1, {"train.py": "1" * 64, "model.py": "2" * 64})
    _end(storage, Reservation(SPEC.id, 1, None))
    edited = _now(train_py="1" * 64, model_py="3" * 64)
    branched = _run(storage, edited, Allowed(code=True), pid=2)
    assert branched.branched_from == SPEC.id
    assert branched.changes == ("file model.py changed",)
    _end(storage, branched.reservation)
    again = _run(storage, edited, pid=3)  # the branch reported nothing: its capture counts
    assert again.reservation.trial_id == branched.reservation.trial_id
    assert again.reservation.execution == 2


def _child(branch_point: int | None = None) -> TrialSpec:
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


def test_a_new_branch_child_is_checked_against_its_parent(storage):
    _end(storage, _run(storage, _capture()).reservation)
    with pytest.raises(ChangeRefused, match="not branching it"):
        _run(storage, _capture(python="3.12.0"), spec=_child(), exact=True)
    outcome = _run(
        storage, _capture(python="3.12.0"), Allowed(environment=True), spec=_child(), exact=True
    )
    assert outcome.reservation == Reservation("cd" * 16, 1, None)
    assert storage.get_trial("cd" * 16)["branch_kind"] == "branch"


def test_a_branch_child_of_no_trial_is_not_found(storage):
    with pytest.raises(TrialNotFound):
        _run(storage, _capture(), spec=_child(), exact=True)
    assert storage.list_trials() == []


def test_an_exact_id_resumes_that_trial_as_stored(storage):
    _end(storage, _run(storage, _capture()).reservation)
    _end(storage, _run(storage, _capture(), spec=_child(), exact=True, pid=2).reservation)
    other = TrialSpec(
        id="cd" * 16, command=["python", "other.py"], identity={}, cwd="/x", user="v"
    )  # what the CLI sends: the stored trial is what runs
    outcome = _run(storage, _capture(), spec=other, exact=True, pid=3)
    assert outcome.reservation == Reservation("cd" * 16, 2, states.BROKEN)
    trial = storage.get_trial("cd" * 16)
    assert (trial["command"], trial["parent"], trial["branch_kind"]) == (
        SPEC.command,
        SPEC.id,
        "branch",
    )
