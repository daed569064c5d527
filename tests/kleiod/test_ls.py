"""The daemon's ``ls``, on both backends: the trials with the status, tags and command-line
options asked for, judged over one read of the journal (never a read per trial); a
malformed filter is a one-line BadRequest."""

from __future__ import annotations

from typing import Any

import pytest

from kleio_client.journal import options
from kleio_client.protocol import Condition
from kleiod import states
from kleiod.errors import BadRequest
from kleiod.live import Live
from kleiod.queries import Queries, _configured
from kleiod.storage import open_storage
from kleiod.storage.base import Claim, ExecutionEnd, TrialSpec


class Counted:
    """A storage that notes the name of each verb asked of it."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        return getattr(self._storage, name)


def _trial(storage: Any, trial_id: str, argv: list[str] | None, status: str) -> str:
    """A trial of ``python t.py ARGV`` (captured nothing when ARGV is None), ended so."""
    spec = TrialSpec(
        id=trial_id, command=["python", "t.py", *(argv or [])], identity={}, cwd="/", user="u"
    )
    capture = (
        None
        if argv is None
        else {
            "configuration": {
                "options": dict(zip(argv[::2], argv[1::2], strict=True)),
                "positional": [],
            }
        }
    )
    storage.reserve(spec, Claim(host="h", pid=1, lease_seconds=30), capture)
    storage.end_execution(ExecutionEnd(trial_id, 1, status, 0, []))
    return trial_id


@pytest.fixture
def listed(database_url: str):
    """``ls`` of a daemon over four trials, their ids, and the storage verbs it asked."""
    storage = open_storage(database_url)
    ids = {
        "large": _trial(storage, "a1" * 16, ["--lr", 0.1, "--batch-size", 8], states.COMPLETED),
        "small": _trial(storage, "a2" * 16, ["--lr", 0.001, "-v", 2], states.BROKEN),
        "bare": _trial(storage, "a3" * 16, None, states.COMPLETED),
        "odd": _trial(
            storage, "a4" * 16, ["---deep-name", "x", "--batch_size", 8], states.COMPLETED
        ),
    }
    storage.set_tags(ids["large"], ["keep", "v1"], [])
    storage.set_tags(ids["odd"], ["v1"], [])
    counted = Counted(storage)
    queries = Queries(counted, lambda: None, Live(lambda frames: None))

    def ls(**args: Any) -> list[str]:
        counted.asked.clear()
        trials = queries.ls(args)
        assert counted.asked == ["list_trials"], counted.asked  # one read, nothing per trial
        return [name for t in trials for name, i in ids.items() if i == t["id"]]

    yield ls, queries, ids
    storage.close()


def test_ls_keeps_the_trials_whose_options_match(listed):
    ls, _, _ = listed
    assert ls() == ["large", "small", "bare", "odd"]
    assert ls(where=[["lr", "gt", 0.01]]) == ["large"]
    assert ls(where=[["batch_size", "eq", 8]]) == ["large", "odd"]  # --batch-size, --batch_size
    assert ls(where=[["batch_size", "eq", 8], ["lr", "lt", 0.01]]) == []
    assert ls(where=[["v", "eq", 2]]) == ["small"]
    assert ls(where=[["deep_name", "in", ["x", "y"]]]) == ["odd"]
    assert ls(where=[["lr", "ne", 0.1]]) == ["small", "bare", "odd"]  # no --lr: only ne
    assert ls(where=[["lr", "gt", "a string"]]) == []  # does not compare: only ne matches


def test_ls_keeps_the_trials_of_a_status_and_with_every_tag(listed):
    ls, _, _ = listed
    assert ls(status=[states.BROKEN]) == ["small"]
    assert ls(status=[states.BROKEN, states.COMPLETED]) == ["large", "small", "bare", "odd"]
    assert ls(tags=["v1"]) == ["large", "odd"]
    assert ls(tags=["v1", "keep"]) == ["large"]
    assert ls(status=[states.COMPLETED], tags=["v1"], where=[["batch_size", "ge", 8]]) == [
        "large",
        "odd",
    ]
    assert ls(status=[], tags=[], where=[]) == ls()  # nothing asked: every trial


def test_ls_gives_each_trial_s_configuration_only_when_asked(listed):
    _, queries, ids = listed
    assert all("configuration" not in t for t in queries.ls({"where": [["lr", "gt", 0]]}))
    shown = queries.ls({"configuration": True})
    assert [t["configuration"] for t in shown] == [
        {"options": {"--lr": 0.1, "--batch-size": 8}, "positional": []},
        {"options": {"--lr": 0.001, "-v": 2}, "positional": []},
        None,
        {"options": {"---deep-name": "x", "--batch_size": 8}, "positional": []},
    ]
    assert [t["id"] for t in shown] == list(ids.values())


@pytest.mark.parametrize(
    "args",
    [
        {"where": "lr>0.1"},
        {"where": [["lr", "gt"]]},
        {"where": [["lr", "gt", 1, 2]]},
        {"where": [[1, "gt", 0]]},
        {"where": [["lr", "zz", 1]]},
        {"where": [["lr", ["gt"], 1]]},
        {"where": {"lr": 1}},
        {"status": "completed"},
        {"status": [1]},
        {"tags": "v1"},
        {"tags": [None]},
    ],
)
def test_a_malformed_filter_is_a_one_line_bad_request(listed, args):
    _, queries, _ = listed
    with pytest.raises(BadRequest) as refused:
        queries.ls(args)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 120


@pytest.mark.parametrize(
    "name", ["--lr", "-v", "---deep-name", "--batch_size", "seed", "--a-b_c", "--"]
)
def test_options_are_named_as_the_read_api_names_them(name: str):
    """The daemon names options as kleio_client.journal.options does (which it may not
    import): the name each trial is found by, in `kleio ls --where` and Journal.trials."""
    configuration = {"options": {name: 1, "--other": 2}}
    [key, _] = options(configuration)
    assert _configured({"configuration": configuration}, [Condition(key, "eq", 1)])
    assert not _configured({"configuration": configuration}, [Condition(key, "ne", 1)])
