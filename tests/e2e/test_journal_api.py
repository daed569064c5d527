"""The Python read API (kleio_client.journal) against a real daemon: find trials by
configuration, read statistics filtered and sorted, artifacts, branch trees."""

from __future__ import annotations

import time
import uuid

import pytest

from kleio_cli.statistics import conditions as cli_conditions
from kleio_client import protocol
from kleio_client.errors import RequestRefused
from kleio_client.journal import Journal, Trial, options
from kleio_client.protocol import conditions
from tests.conftest import trial_id

TRAIN = """
import argparse, io
from kleio_client import kleio_logger
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--batch-size", type=int, default=8)
args = parser.parse_args()
ckpt = kleio_logger.load_artifact("ckpt")
start = 0 if ckpt is None else int(ckpt.open().read()) + 1
for epoch in range(start, start + 4):
    kleio_logger.log_statistic(epoch=epoch, split="train", loss=args.lr * (10 - epoch))
    kleio_logger.log_statistic(epoch=epoch, split="val", loss=args.lr * (12 - epoch))
    kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
"""


@pytest.fixture(params=["sqlite", "mongodb"])
def journal(request, kleio, script, isolated, monkeypatch):
    if request.param == "mongodb":
        base = request.getfixturevalue("mongodb_server")
        monkeypatch.setenv("KLEIO_DATABASE", f"{base}/kleio_api_{uuid.uuid4().hex[:10]}")
    name = script(TRAIN)
    ids = {
        lr: trial_id(kleio.ok("python", name, "--lr", lr, "--batch-size", "16").stderr)
        for lr in ("0.1", "0.01", "0.001")
    }
    child = trial_id(
        kleio.ok("branch", ids["0.1"], "--timestamp", "epoch=1", "--lr", "0.05").stderr
    )
    kleio.ok("tag", ids["0.01"], "keep")
    with Journal(str(isolated.kleio_runtime)) as opened:
        yield opened, ids, child


def _trials_by_configuration_status_tags_and_time(journal):
    opened, ids, child = journal
    assert {t.id for t in opened.trials(lr__gt=0.005)} == {ids["0.1"], ids["0.01"], child}
    assert [t.id for t in opened.trials(lr=0.001)] == [ids["0.001"]]
    assert [t.id for t in opened.trials(lr__in=[0.01, 0.5])] == [ids["0.01"]]
    assert [t.id for t in opened.trials(tags=["keep"])] == [ids["0.01"]]
    assert len(opened.trials(status="completed", batch_size=16)) == 4
    assert opened.trials(created_after=time.time() + 60) == []
    assert [t.id for t in opened.trials(id=child[:6])] == [child]
    assert opened.trial(ids["0.1"][:8]).configuration["batch_size"] == 16


def _before(opened, where: dict) -> list[str]:
    """The trials ``where`` selected before the daemon judged it: each trial's ``info``
    asked of the daemon, its configuration judged here."""
    wanted = conditions(where)
    infos = [
        opened.call("info", id=t["id"])
        for t in opened.call("ls")
        if t.get("branch_kind") != "scratch"
    ]
    return [
        info["id"]
        for info in infos
        if all(c.holds(Trial(opened, info).configuration) for c in wanted)
    ]


def _options_before(opened, expression: str) -> list[str]:
    """What `kleio ls --where EXPRESSION` listed before: each trial's options judged
    by the CLI."""
    wanted = cli_conditions([expression])
    infos = [opened.call("info", id=t["id"]) for t in opened.call("ls")]
    return [
        info["id"]
        for info in infos
        if all(c.holds(options(info.get("configuration") or {})) for c in wanted)
    ]


def _trials_found_in_one_listing_as_before(journal, kleio, monkeypatch):
    opened, ids, child = journal
    for where in (
        {"lr__gt": 0.005},
        {"lr__lt": 0.05, "batch_size": 16},
        {"lr__ne": 0.1},
        {"batch_size__ge": 17},
        {"lr__in": (0.05, 0.001)},
        {"lr": 0.05},
        {"arguments": []},
        {"arguments__contains": "x"},
        {"epochs__ne": 3},
    ):
        assert [t.id for t in opened.trials(**where)] == _before(opened, where), where
    for expression in (
        "lr>0.005",
        "lr<0.05",
        "lr!=0.1",
        "batch_size=16",
        "lr>=0.05",
        "batch_size>16",
        "epochs!=3",
    ):
        listed = [t["id"] for t in kleio.json("ls", "--where", expression)]
        assert listed == _options_before(opened, expression), expression
    asked: list[str] = []
    call = opened.call
    monkeypatch.setattr(opened, "call", lambda cmd, **args: asked.append(cmd) or call(cmd, **args))
    [branch] = opened.trials(lr=0.05)
    assert (branch.id, branch.status, branch.configuration["lr"]) == (child, "completed", 0.05)
    assert branch.parent is not None and asked == ["ls", "info"]  # the parent's info
    assert branch.info == call("info", id=child)  # asked of the daemon once it is read
    assert asked == ["ls", "info", "info"] and branch.info["executions"]
    refused = pytest.raises(RequestRefused, opened.call, "ls", where="lr>0.1")
    assert refused.value.code == protocol.E_BAD_REQUEST and "\n" not in str(refused.value)


def _statistics_filtered_sorted_selected_and_inherited(journal):
    opened, ids, child = journal
    trial = opened.trial(ids["0.1"])
    val = trial.statistics(split="val", sort="loss", keys=["epoch", "loss"])
    assert [r["epoch"] for r in val] == [3, 2, 1, 0]
    late = trial.statistics(epoch__ge=2, sort=["split", "epoch"], descending=True)
    assert [(r["split"], r["epoch"]) for r in late] == [
        ("val", 3),
        ("val", 2),
        ("train", 3),
        ("train", 2),
    ]
    branch = opened.trial(child)
    assert branch.parent is not None and branch.parent.id == ids["0.1"]
    assert [t.id for t in branch.ancestors()] == [ids["0.1"]]
    assert [t.id for t in opened.trial(ids["0.1"]).children()] == [child]
    epochs = [r["epoch"] for r in branch.statistics(split="train")]
    assert epochs == [0, 1, 2, 3, 4, 5]  # epochs 0-1 inherited, then its own from epoch 2


def _artifacts_open_and_download(journal, tmp_path):
    opened, ids, _ = journal
    found = opened.trial(ids["0.01"]).artifacts("ckpt", epoch__ge=2)
    assert [a.metadata["epoch"] for a in found] == [2, 3]
    with found[-1].open() as stream:
        assert stream.read() == b"3"
    target = found[0].download(str(tmp_path / "ckpt2"))
    assert open(target, "rb").read() == b"2"


def _a_dataframe(journal):
    opened, ids, _ = journal
    trial = opened.trial(ids["0.001"])
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            trial.dataframe()
        return
    frame = trial.dataframe(split="val", keys=["epoch", "loss"])
    assert list(frame.columns) == ["epoch", "loss"] and len(frame) == 4


def _every_execution_on_request(journal):
    opened, ids, _ = journal
    rows = opened.trial(ids["0.001"]).every_execution(split="val")
    assert [(r["execution"], r["superseded"], r["record"]["epoch"]) for r in rows] == [
        (1, False, 0),
        (1, False, 1),
        (1, False, 2),
        (1, False, 3),
    ]


@pytest.mark.slow
def test_the_read_api(journal, tmp_path, kleio, monkeypatch):
    """One journal (per backend) read every way: trials by configuration (found as the
    per-trial path found them, in one listing), statistics, artifacts, branch trees, data
    frames, every execution."""
    _trials_by_configuration_status_tags_and_time(journal)
    _trials_found_in_one_listing_as_before(journal, kleio, monkeypatch)
    _statistics_filtered_sorted_selected_and_inherited(journal)
    _artifacts_open_and_download(journal, tmp_path)
    _a_dataframe(journal)
    _every_execution_on_request(journal)
