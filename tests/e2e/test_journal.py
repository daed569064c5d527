"""The journal: branching at a timestamp, resume points, artifacts, resources."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import trial_id

TRAIN = """
import argparse, io, json, os, sys
from kleio_client import kleio_logger

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=8)
p.add_argument("--steps", type=int, default=4)
p.add_argument("--tag", default="a")
a = p.parse_args()
w, start = 1.0, 0
ckpt = None if os.environ.get("NO_RESUME") else kleio_logger.load_artifact("ckpt.json")
if ckpt is not None:
    with ckpt.open() as f:
        state = json.load(f)
    w, start = state["w"], state["epoch"] + 1
    print("resumed from epoch", state["epoch"], flush=True)
crash = os.environ.get("CRASH_AT")
for epoch in range(start, a.epochs):
    for step in range(a.steps):
        if crash and os.environ["KLEIO_EXECUTION"] == "1" and [epoch, step] == json.loads(crash):
            sys.exit(3)
        w = w - a.lr * w * (step + 1) / 10
        kleio_logger.log_statistic(epoch=epoch, step=step, w=w, lr=a.lr)
    blob = json.dumps({"epoch": epoch, "w": w}).encode()
    kleio_logger.log_artifact("ckpt.json", io.BytesIO(blob), epoch=epoch)
"""


@pytest.fixture
def train(script):
    return script(TRAIN)


def _rows(db_path):
    with sqlite3.connect(db_path) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("trials", "chunks")
        }


def _expected(lr_by_epoch: dict[int, float], epochs: int, steps: int = 4) -> list[dict]:
    w, rows = 1.0, []
    for epoch in range(epochs):
        lr = lr_by_epoch.get(epoch, lr_by_epoch[-1])
        for step in range(steps):
            w = w - lr * w * (step + 1) / 10
            rows.append({"epoch": epoch, "step": step, "w": w, "lr": lr})
    return rows


@pytest.mark.slow
def test_resumed_mid_epoch_from_the_last_checkpoint_each_step_once(kleio, train, monkeypatch):
    monkeypatch.setenv("CRASH_AT", "[5, 2]")  # the middle of epoch 5
    first = kleio("python", train)
    assert first.returncode == 3
    monkeypatch.delenv("CRASH_AT")
    second = kleio("python", train)
    assert second.returncode == 0, second.stderr
    assert "resumed from epoch 4" in second.stdout
    tid = trial_id(second.stderr)
    resumed = kleio.json("stats", tid)
    uninterrupted = kleio.json("stats", trial_id(kleio("python", train, "--tag", "b").stderr))
    expected = _expected({-1: 0.1}, 8)
    assert resumed == uninterrupted == [{**r, "lr": 0.1} for r in expected]
    everything = json.loads(kleio.ok("stats", tid, "--all-executions", "--json").stdout)
    superseded = [
        (r["record"]["epoch"], r["record"]["step"]) for r in everything if r["superseded"]
    ]
    assert superseded == [(5, 0), (5, 1)]  # kept, but out of the effective history
    lines = kleio.ok("stats", tid).stdout.splitlines()  # the table says which execution
    assert lines[0].split()[0] == "EXEC"
    assert [line.split()[0] for line in lines[1:]] == [
        "1" if (r["epoch"], r["step"]) < (5, 0) else "2" for r in resumed
    ]
    none = kleio.ok("stats", tid, "--where", "epoch>99", "--format", "csv").stdout
    assert none.splitlines()[0].split(",")[0] == "EXEC"  # even with no row
    info = kleio.json("info", tid)
    assert info["executions"][1]["resume_point"] is not None


def test_branch_at_a_timestamp_continues_from_the_parents_checkpoint(kleio, train, isolated):
    parent = trial_id(kleio("python", train, "--lr", "0.1").stderr)
    before = _rows(isolated.journal)
    done = kleio("branch", parent[:8], "--timestamp", "epoch=3", "--lr", "0.5")
    assert done.returncode == 0, done.stderr
    assert "resumed from epoch 3" in done.stdout
    child = trial_id(done.stderr)
    info = kleio.json("info", child)
    assert info["parent"] == parent and info["command"] == f"python {train} --lr 0.5"
    assert kleio.json("stats", child) == _expected({0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1, -1: 0.5}, 8)
    after = _rows(isolated.journal)
    own = (
        sqlite3.connect(isolated.journal)
        .execute("SELECT count(*) FROM chunks WHERE trial_id = ?", (child,))
        .fetchone()[0]
    )
    assert after["trials"] == before["trials"] + 1
    assert after["chunks"] == before["chunks"] + own  # nothing of the parent copied
    assert kleio.json("stats", parent) == _expected({-1: 0.1}, 8)  # parent untouched
    again = kleio("branch", parent[:8], "--timestamp", "epoch=3", "--lr", "0.5")
    assert f"trial {child[:12]} is completed" in again.stderr  # same branch, not a new one


def test_branch_points_greatest_below_end_and_of_a_branch(kleio, train):
    parent = trial_id(kleio("python", train, "--epochs", "6").stderr)
    below = kleio("branch", parent, "--timestamp", "epoch=2.5", "--lr", "0.2")
    assert "resumed from epoch 2" in below.stdout, below.stderr
    end = kleio("branch", parent, "--epochs", "7")
    assert "resumed from epoch 5" in end.stdout, end.stderr
    child = trial_id(below.stderr)
    grandchild = kleio("branch", child, "--timestamp", "epoch=4", "--lr", "0.3")
    assert grandchild.returncode == 0, grandchild.stderr
    assert "resumed from epoch 4" in grandchild.stdout
    stats = kleio.json("stats", trial_id(grandchild.stderr))
    assert stats == _expected({0: 0.1, 1: 0.1, 2: 0.1, 3: 0.2, 4: 0.2, -1: 0.3}, 6)


def test_branch_refuses_unknown_keys_and_positional_changes(kleio, train):
    parent = trial_id(kleio("python", train).stderr)
    unknown = kleio("branch", parent, "--timestamp", "epochs=3")
    assert unknown.returncode == 2
    assert "no record has the key 'epochs'" in unknown.stderr and "epoch" in unknown.stderr
    positional = kleio("branch", parent, "extra.csv", "--lr", "0.3")
    assert positional.returncode == 2 and "positional" in positional.stderr
    malformed = kleio("branch", parent, "--timestamp", "epoch")
    assert malformed.returncode == 2 and "KEY=VALUE" in malformed.stderr
    assert len(kleio.json("ls")) == 1


def test_the_script_reads_its_effective_history(kleio, script):
    name = script(
        """
        import io, os, sys
        from kleio_client import kleio_logger
        if os.environ["KLEIO_EXECUTION"] == "1":
            for epoch in range(4):
                kleio_logger.log_statistic(epoch=epoch, loss=1 / (epoch + 1))
                kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
            kleio_logger.log_statistic(epoch=4, loss=0.1)  # after the last checkpoint
            sys.exit(1)
        kleio_logger.load_artifact("ckpt", epoch=2)  # resume from epoch 2
        kleio_logger.log_statistic(epoch=3, loss=0.2)
        print("losses", [r["loss"] for r in kleio_logger.statistics()])
        print("epoch3", kleio_logger.statistics(epoch=3))
        print("ckpts", [a.metadata["epoch"] for a in kleio_logger.artifacts("ckpt")])
        print("one", [a.open().read() for a in kleio_logger.artifacts(epoch=1)])
    """,
        name="reader.py",
    )
    assert kleio("python", name).returncode == 1
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    assert "losses [1.0, 0.5, 0.3333333333333333, 0.2]" in done.stdout
    assert "epoch3 [{'epoch': 3, 'loss': 0.2}]" in done.stdout
    assert "ckpts [0, 1, 2]" in done.stdout
    assert "one [b'1']" in done.stdout


def test_artifacts_listing_and_get(kleio, train, workdir):
    tid = trial_id(kleio("python", train, "--epochs", "3").stderr)
    listed = kleio.json("artifacts", tid)
    assert [(a["filename"], a["metadata"]["epoch"]) for a in listed] == [
        ("ckpt.json", 0),
        ("ckpt.json", 1),
        ("ckpt.json", 2),
    ]
    assert all(a["size"] > 0 and a["position"] for a in listed)
    table = kleio.ok("artifacts", tid).stdout.splitlines()
    assert table[0].split() == ["FILENAME", "BYTES", "METADATA", "FROM", "SHA256"]
    kleio.ok("artifact", "get", tid, "ckpt.json", "--where", "epoch=1", "-o", "one.json")
    assert json.loads((workdir / "one.json").read_text())["epoch"] == 1
    kleio.ok("artifact", "get", tid, "ckpt.json")
    assert json.loads((workdir / "ckpt.json").read_text())["epoch"] == 2
    missing = kleio("artifact", "get", tid, "ckpt.json", "--where", "epoch=9")
    assert missing.returncode == 3 and "no artifact" in missing.stderr


def test_a_changed_resource_is_an_environment_change(kleio, script, workdir, tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "train.csv").write_text("1,2\n")
    name = script(
        f"""
        import os, pathlib, sys
        from kleio_client import kleio_logger
        kleio_logger.log_resource({str(data)!r}, role="training data")
        first = not pathlib.Path("ran-once").exists()
        pathlib.Path("ran-once").touch()
        sys.exit(1 if first else 0)
    """,
        name="uses_data.py",
    )
    assert kleio("python", name).returncode == 1
    (data / "train.csv").write_text("1,2\n3,4\n")
    refused = kleio("python", name)
    assert refused.returncode == 7
    assert f"resource {data} changed" in refused.stderr
    assert "--allow-env-change" in refused.stderr
    branched = kleio("--allow-env-change", "python", name)
    assert branched.returncode == 0, branched.stderr
    cache = json.loads((workdir.parent / "cache" / "kleio" / "resources.json").read_text())
    assert str(data / "train.csv") in cache


def test_a_trial_that_read_a_resource_branches_while_the_resource_is_unchanged(
    kleio, script, workdir
):
    (workdir / "data.csv").write_text("1,2\n")
    name = script(
        "from kleio_client import kleio_logger\n"
        "kleio_logger.log_resource('data.csv')\n"
        "kleio_logger.log_statistic(epoch=1)\n",
        name="reads_data.py",
    )
    parent = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    child = kleio("branch", parent, "--lr", "0.2")
    assert child.returncode == 0, child.stderr
    (workdir / "data.csv").write_text("changed\n")
    refused = kleio("branch", parent, "--lr", "0.3")
    assert refused.returncode == 7 and "data.csv changed" in refused.stderr


@pytest.fixture(autouse=True)
def _cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_one_gib_artifact_streams_in_bounded_memory(kleio, script, isolated):
    name = script(
        """
        import hashlib, os, resource
        from kleio_client import kleio_logger

        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        chunk = os.urandom(8 << 20)
        with open("big.bin", "wb") as f:
            for _ in range(128):
                f.write(chunk)
        expected = hashlib.sha256()
        for _ in range(128):
            expected.update(chunk)
        del chunk
        base = peak()
        with open("big.bin", "rb") as f:
            kleio_logger.log_artifact("big.bin", f, kind="weights")
        found = kleio_logger.load_artifact("big.bin")
        got = hashlib.sha256()
        with found.open() as f:
            while block := f.read(1 << 20):
                got.update(block)
        assert got.hexdigest() == expected.hexdigest() == found.sha256
        print("client extra MiB", (peak() - base) >> 20, flush=True)
        os.remove("big.bin")
    """,
        name="big.py",
    )
    kleio.ok("daemon", "start")
    from kleio_runtime import lock

    daemon = lock.holder_pid(isolated.kleio_runtime)

    def daemon_peak() -> int:
        status = open(f"/proc/{daemon}/status").read()
        return (
            int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
            * 1024
        )

    before = daemon_peak()
    done = kleio("python", name, timeout=300)
    assert done.returncode == 0, done.stderr
    extra = int(done.stdout.split("client extra MiB")[1].split()[0])
    assert extra < 64
    assert (daemon_peak() - before) < 64 << 20
    assert kleio.json("artifacts", trial_id(done.stderr))[0]["size"] == 1 << 30


@pytest.mark.slow
def test_a_childs_history_ignores_what_its_parent_did_later(kleio, train, monkeypatch):
    monkeypatch.setenv("CRASH_AT", "[5, 0]")
    parent = trial_id(kleio("python", train).stderr)
    monkeypatch.delenv("CRASH_AT")
    child = trial_id(kleio("branch", parent, "--timestamp", "epoch=4", "--lr", "0.05").stderr)
    expected = kleio.json("stats", child)
    assert len(expected) == 32
    # the parent is resumed from scratch (its checkpoints ignored): a new history for it...
    monkeypatch.setenv("NO_RESUME", "1")
    kleio.ok("exec", parent)
    assert kleio.json("info", parent)["executions"][1]["restarted"] is True
    # ...which the child, branched from the old one, never sees
    assert kleio.json("stats", child) == expected
    assert "records inherited" in kleio.ok("info", child).stdout


def test_statistics_of_a_restarted_execution_are_its_own(kleio, script):
    name = script("""
        import os, sys
        from kleio_client import kleio_logger
        for step in range(3):
            kleio_logger.log_statistic(step=step)
        print("seen", [r["step"] for r in kleio_logger.statistics()], flush=True)
        sys.exit(1 if os.environ["KLEIO_EXECUTION"] == "1" else 0)
    """)
    kleio("python", name)
    done = kleio("python", name)
    assert "seen [0, 1, 2]" in done.stdout


def test_reverting_a_resource_selects_the_original_not_the_branch(kleio, script, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("v1")
    name = script(
        f"""
        import os, pathlib, sys
        from kleio_client import kleio_logger
        if pathlib.Path({str(data)!r}).read_text() == "v2":
            sys.exit(2)  # the v2 branch fails before logging its resource
        kleio_logger.log_resource({str(data)!r})
        sys.exit(1)
    """,
        name="res.py",
    )
    original = trial_id(kleio("python", name).stderr)
    data.write_text("v2")
    branch = trial_id(kleio("--allow-env-change", "python", name).stderr)
    assert branch != original
    data.write_text("v1")
    again = kleio("python", name)
    assert trial_id(again.stderr) == original
