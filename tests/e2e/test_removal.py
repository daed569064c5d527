"""`kleio rm` and `kleio gc` against a real daemon, real trials and a real journal (a
SQLite file, and a MongoDB-wire server): what goes, what stays exactly as it was, and
what is refused."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import trial_id

TRAIN = """
import argparse, json
from kleio_client import kleio_logger

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
args = parser.parse_args()
start, weight = 0, 1.0
ckpt = kleio_logger.load_artifact("ckpt.json")
if ckpt is not None:  # a branch, from its parent's checkpoint
    with ckpt.open() as f:
        state = json.load(f)
    start, weight = state["epoch"] + 1, state["weight"]
else:
    kleio_logger.log_artifact("data.bin", b"the same data" * 5000, part="train")  # every trial's
    kleio_logger.log_artifact("vocab.txt", b"large" if args.lr >= 0.3 else b"small")  # some's
for epoch in range(start, 3):
    weight *= 1 - args.lr
    kleio_logger.log_statistic(epoch=epoch, weight=weight, lr=args.lr)
    state = {"epoch": epoch, "weight": weight, "lr": args.lr}
    kleio_logger.log_artifact("ckpt.json", json.dumps(state).encode(), epoch=epoch)
"""

# Every artifact of each trial named, read back through the daemon by a script.
READ = """
import hashlib, json, sys
from kleio_client.journal import Journal

with Journal() as journal:
    print(json.dumps({
        tid: [
            [a.filename, a.sha256, hashlib.sha256(a.open().read()).hexdigest()]
            for a in journal.trial(tid).artifacts()
        ]
        for tid in sys.argv[1:]
    }))
"""


class Blobs:
    """The artifacts' bytes a journal stores, by sha256, read where they are kept."""

    def __init__(self, data_dir: Path, database: str | None) -> None:
        self._data_dir = data_dir
        self._database = database

    def stored(self) -> set[str]:
        if self._database is None:
            return {p.name for p in (self._data_dir / "kleio" / "artifacts").glob("??/*")}
        import pymongo

        with pymongo.MongoClient(self._database) as client:
            files = client.get_default_database()["artifacts.files"]
            return set(files.distinct("filename"))


@pytest.fixture(params=["sqlite", "mongodb"])
def blobs(request, isolated, monkeypatch) -> Blobs:
    """The journal of the test's daemon: the default SQLite file, or a MongoDB database
    (KLEIO_DATABASE, as a lab configures it)."""
    database = None
    if request.param == "mongodb":
        base = request.getfixturevalue("mongodb_server")
        database = f"{base}/kleio_rm_{uuid.uuid4().hex[:10]}"
        monkeypatch.setenv("KLEIO_DATABASE", database)
    return Blobs(isolated.data, database)


def _seen(kleio, trial: str) -> dict[str, object]:
    """What a user reads of a trial: its statistics, its artifacts, its record."""
    info = kleio.json("info", trial)
    return {
        "stats": kleio.json("stats", trial),
        "artifacts": info["artifacts"],
        "trial": {k: info[k] for k in ("status", "command", "parent", "statistics", "history")},
    }


def _read_back(kleio, workdir: Path, trials: list[str]) -> dict[str, list[list[str]]]:
    (workdir / "read.py").write_text(READ)
    done = subprocess.run(
        [sys.executable, "read.py", *trials], cwd=workdir, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.slow
def test_removing_a_trial_and_collecting_leaves_every_other_trial_as_it_was(
    kleio, script, workdir, blobs
):
    name = script(TRAIN)
    lrs = ("0.1", "0.3", "0.5")
    ids = {lr: trial_id(kleio.ok("python", name, "--lr", lr).stderr) for lr in lrs}
    branch = trial_id(
        kleio.ok("branch", ids["0.1"], "--timestamp", "epoch=1", "--lr", "0.2").stderr
    )
    kept, doomed = [ids["0.1"], ids["0.3"], branch], ids["0.5"]
    before = {trial: _seen(kleio, trial) for trial in kept}
    assert [r["epoch"] for r in before[branch]["stats"]] == [0, 1, 2]  # 0 and 1 inherited
    sizes = {a["sha256"]: a["size"] for a in kleio.json("info", doomed)["artifacts"]}
    doomed_shas = set(sizes)
    kept_shas = {a["sha256"] for trial in kept for a in before[trial]["artifacts"]}
    unshared, shared = doomed_shas - kept_shas, doomed_shas & kept_shas
    assert (len(unshared), len(shared)) == (3, 2)  # its checkpoints; the data, the vocabulary

    removed = kleio.ok("rm", "--yes", doomed[:6])
    assert removed.stdout.splitlines() == [
        f"removed {doomed[:8]} (completed): python {name} --lr 0.5; 3 statistics, 5 artifacts"
    ]
    gone = kleio("info", doomed)
    assert gone.returncode == 3 and len(gone.stderr.splitlines()) == 1
    assert [t["id"] for t in kleio.json("ls")] == kept
    assert blobs.stored() >= doomed_shas  # the bytes stay until collected

    recent = kleio.ok("gc")  # the default grace: bytes stored within the hour are kept
    assert recent.stdout.startswith("freed 0 artifact blobs, 0 bytes")
    assert "kept 3 unreferenced blobs" in recent.stderr and "--grace 0" in recent.stderr
    assert blobs.stored() >= doomed_shas
    collected = kleio.json("gc", "--grace", "0")
    assert (collected["blobs"], collected["referenced_blobs"]) == (3, len(kept_shas))
    assert collected["bytes"] == sum(sizes[sha] for sha in unshared)

    stored = blobs.stored()
    assert not stored & unshared
    assert kept_shas <= stored
    assert {trial: _seen(kleio, trial) for trial in kept} == before
    read = _read_back(kleio, workdir, kept)
    for trial in kept:
        recorded = [(a["filename"], a["sha256"]) for a in before[trial]["artifacts"]]
        assert [(filename, sha) for filename, sha, _ in read[trial]] == recorded
        assert all(sha == of_bytes for _, sha, of_bytes in read[trial])
    for trial in (ids["0.3"], branch):  # the shared bytes, and the inherited ones
        target = workdir / f"data-{trial}.bin"
        kleio.ok("artifact", "get", trial, "data.bin", "--where", "part=train", "-o", str(target))
        assert target.read_bytes() == b"the same data" * 5000
    kleio.ok("artifact", "get", ids["0.3"], "vocab.txt", "-o", str(workdir / "vocab"))
    assert (workdir / "vocab").read_bytes() == b"large"
    assert kleio.json("gc", "--grace", "0")["blobs"] == 0  # nothing more to take


def _wait_until_running(kleio, deadline: float = 60) -> str:
    end = time.monotonic() + deadline
    while True:
        running = [t["id"] for t in kleio.json("ls", "--status", "running")]
        if running:
            return str(running[0])
        assert time.monotonic() < end, "the trial never ran"
        time.sleep(0.05)


def test_a_running_trial_is_refused_until_it_has_ended(kleio, script, workdir):
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=1)
        deadline = time.monotonic() + 120
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never let the trial end"
            time.sleep(0.01)
    """)
    proc = kleio.popen("python", name)
    try:
        running = _wait_until_running(kleio)
        refused = kleio("rm", "--yes", running[:6])
        assert refused.returncode == 4  # as a trial already running is refused to run
        assert refused.stderr.splitlines() == [
            f"kleio: trial {running[:12]} is running (host {os.uname().nodename}, pid "
            f"{kleio.json('info', running)['pid']}); remove it once it has ended (Ctrl-C, "
            "or kill the pid)"
        ]
    finally:
        (workdir / "go").touch()
        assert proc.wait(timeout=120) == 0
    assert kleio.json("stats", running) == [{"step": 1}]
    kleio.ok("rm", "--yes", running)
    assert kleio.json("ls") == []


def test_a_trial_with_branches_goes_only_with_them(kleio, script):
    name = script(TRAIN)
    parent = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    other = trial_id(kleio.ok("python", name, "--lr", "0.3").stderr)
    branch = trial_id(kleio.ok("branch", parent, "--timestamp", "epoch=1", "--lr", "0.2").stderr)
    twig = trial_id(kleio.ok("branch", branch, "--lr", "0.25").stderr)
    refused = kleio("rm", "--yes", parent)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"kleio: trial {parent[:12]} has branches ({branch[:8]}), which read its history; "
        "add --with-branches to remove them too"
    ]
    assert len(kleio.json("ls")) == 4
    removed = kleio.json("rm", "--yes", "--with-branches", parent)
    assert [(t["id"], t["parent"]) for t in removed] == [
        (parent, None),
        (branch, parent),
        (twig, branch),
    ]
    assert [t["id"] for t in kleio.json("ls")] == [other]


def test_an_unknown_or_ambiguous_id_is_one_line_and_exit_3(kleio, script):
    kleio.ok("python", script(TRAIN), "--lr", "0.1")
    for prefix in ("ffffffff", "not-an-id"):
        done = kleio("rm", "--yes", prefix)
        assert (done.returncode, done.stdout) == (3, "")
        assert len(done.stderr.splitlines()) == 1 and "kleio ls" in done.stderr
    assert len(kleio.json("ls")) == 1


def test_without_yes_and_without_a_terminal_nothing_is_removed(kleio, script):
    tid = trial_id(kleio.ok("python", script(TRAIN), "--lr", "0.1").stderr)
    done = subprocess.run(
        kleio.argv("rm", tid),
        cwd=kleio.cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "kleio rm: no terminal to ask on; add --yes to remove without asking"
    ]
    assert [t["id"] for t in kleio.json("ls")] == [tid]


def _answered(kleio, answer: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """`kleio rm` on a terminal where the user types ``answer``."""
    terminal, its_end = pty.openpty()
    proc = subprocess.Popen(
        kleio.argv("rm", *args),
        cwd=kleio.cwd,
        stdin=its_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(its_end)
    try:
        os.write(terminal, answer)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(terminal)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_on_a_terminal_it_lists_what_goes_and_removes_only_on_yes(kleio, script):
    name = script(TRAIN)
    tid = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    declined = _answered(kleio, b"\n", tid[:5])
    assert (declined.returncode, declined.stdout) == (1, "")
    assert declined.stderr.splitlines() == [
        "kleio rm removes 1 trial and everything logged in it:",
        "ID        STATUS     STATISTICS  ARTIFACTS  COMMAND",
        f"{tid[:8]}  completed  3           5          python {name} --lr 0.1",
        "Remove? [y/N] kleio: nothing removed",
    ]
    assert [t["id"] for t in kleio.json("ls")] == [tid]
    accepted = _answered(kleio, b"y\n", tid[:5])
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith(f"removed {tid[:8]} (completed)")
    assert kleio.json("ls") == []


def test_a_trial_s_debugging_sessions_go_with_it(kleio, script):
    """`kleio pdb` sessions are scratch branches, never listed: no --with-branches for them."""
    name = script(TRAIN)
    tid = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    debugged = subprocess.run(
        kleio.argv("pdb", tid),
        cwd=kleio.cwd,
        input="c\nq\n",  # the debugger's commands: run to the end, quit
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert debugged.returncode == 0, debugged.stderr
    scratch = trial_id(debugged.stderr)
    assert [t["id"] for t in kleio.json("ls")] == [tid]
    removed = kleio.ok("rm", "--yes", tid)
    assert [line.split()[1] for line in removed.stdout.splitlines()] == [tid[:8], scratch[:8]]
    for gone in (tid, scratch):
        assert kleio("info", gone).returncode == 3


def test_bytes_a_running_trial_stored_but_has_not_recorded_yet_are_kept(
    kleio, script, workdir, blobs
):
    """The Lightning integration stores a checkpoint's bytes, and records it a batch later."""
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        body = kleio_logger._store_artifact("ckpt.bin", b"weights" * 1000, {"step": 1})
        open("stored", "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never let the trial go on"
            time.sleep(0.01)
        kleio_logger._journal_artifact(body)
        with kleio_logger.load_artifact("ckpt.bin", step=1).open() as f:
            assert f.read() == b"weights" * 1000
        print("loaded", flush=True)
    """)
    proc = kleio.popen("python", name)
    try:
        deadline = time.monotonic() + 60
        while not (workdir / "stored").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "no bytes stored"
            time.sleep(0.02)
        collected = kleio.json("gc")  # no record names the bytes yet: recent, kept
        assert (collected["blobs"], collected["recent_blobs"]) == (0, 1)
    finally:
        (workdir / "go").touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"loaded" in out
    assert kleio.json("gc", "--grace", "0")["referenced_blobs"] == 1
    assert len(blobs.stored()) == 1


def test_gc_sweeps_an_upload_cut_short_once_it_is_older_than_the_grace(kleio, isolated):
    spools = isolated.data / "kleio" / "artifacts" / "tmp"
    spools.mkdir(parents=True)
    old, fresh = spools / "killed-mid-upload.part", spools / "in-progress.part"
    old.write_bytes(b"half a checkpoint")
    fresh.write_bytes(b"still coming")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    done = kleio.ok("gc")
    assert "freed 1 leftover of uploads or deletions cut short, 17 bytes" in done.stdout
    assert not old.exists() and fresh.exists()
    assert kleio.json("gc")["leftovers"] == 0
