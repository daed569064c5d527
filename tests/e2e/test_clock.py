"""Leases are measured on the database's clock, not on the daemons' machines' clocks.

A machine whose clock runs an hour ahead (its whole Python: a ``sitecustomize`` that
shifts ``time.time``) runs a trial that then dies with its supervisor and its daemon.
A daemon on a machine with the right clock must declare it lost once its lease has
ended, not an hour later; on MongoDB that daemon is another machine's.  Nor does a
transaction that a dead daemon left open on the trial stall the daemon that expires it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from kleio_runtime import lock
from tests.conftest import trial_id, wait_for_line

SKEWED = """
import time
_real = time.time
time.time = lambda: _real() + {offset}
"""

HOLDS = """
import os, time
from kleio_client import kleio_logger
kleio_logger.log_statistic(step=0)
print("pid", os.getpid(), "up", flush=True)
deadline = time.monotonic() + 300
while not os.path.exists("never"):
    assert time.monotonic() < deadline, "nobody killed the trial"
    time.sleep(0.05)
"""


@pytest.fixture(params=["sqlite", "mongodb"])
def machine(request: pytest.FixtureRequest, isolated, tmp_path):
    """Make the environment of a machine with its own runtime directory and clock, all
    on one database; their daemons are stopped at the end."""
    if request.param == "sqlite":
        database = f"sqlite:///{isolated.data / 'kleio' / 'journal.sqlite'}"
    else:
        server = request.getfixturevalue("mongodb_server")
        database = f"{server}/kleio_clock_{uuid.uuid4().hex[:10]}"
    made: list[dict[str, str]] = []

    def make(name: str, offset: float) -> dict[str, str]:
        site = tmp_path / f"site-{name}"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SKEWED.format(offset=offset))
        runtime = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
        made.append(
            {
                **os.environ,
                "KLEIO_DATABASE": database,
                "XDG_RUNTIME_DIR": str(runtime),
                "PYTHONPATH": str(site),
                "KLEIO_LEASE_SECONDS": "2",
            }
        )
        return made[-1]

    yield make
    for env in made:
        subprocess.run(
            [sys.executable, "-m", "kleio_cli", "daemon", "stop"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(env["XDG_RUNTIME_DIR"], ignore_errors=True)


def _kill_machine(env: dict[str, str], trial: int) -> None:
    """The machine dies: its trial, the trial's supervisor and `kleio`, its daemon."""
    victims = [psutil.Process(trial), *psutil.Process(trial).parents()[:2]]
    daemon = lock.holder_pid(Path(env["XDG_RUNTIME_DIR"]) / "kleio")
    for process in victims:
        process.kill()
    if daemon is not None:
        os.kill(daemon, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while lock.is_held(Path(env["XDG_RUNTIME_DIR"]) / "kleio"):
        assert time.monotonic() < deadline, "the killed daemon kept its lock"
        time.sleep(0.02)


def _cli(kleio, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kleio.argv(*args), cwd=kleio.cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _status(kleio, env: dict[str, str], tid: str) -> str:
    shown = _cli(kleio, env, "info", tid, "--json")
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["status"])


def _dies_holding(kleio, script, env: dict[str, str]) -> str:
    """A trial runs on the machine of ``env``, its record journaled, and the machine dies
    (after the write: a daemon killed inside a transaction is another test's)."""
    proc = subprocess.Popen(
        kleio.argv("python", script(HOLDS)),
        cwd=kleio.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        trial = int(wait_for_line(proc.stdout, " up").split("pid ")[1].split()[0])
        listed = json.loads(_cli(kleio, env, "ls", "--json").stdout)
        tid = listed[0]["id"]
        deadline = time.monotonic() + 60
        while len(json.loads(_cli(kleio, env, "stats", tid, "--json").stdout)) < 1:
            assert time.monotonic() < deadline, "the trial's record was never journaled"
            time.sleep(0.1)
        _kill_machine(env, trial)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert trial_id(proc.stderr.read().decode()) == tid
    return str(tid)


def _until_lost(kleio, env: dict[str, str], tid: str) -> None:
    deadline = time.monotonic() + 60
    while _status(kleio, env, tid) != "lost":
        assert time.monotonic() < deadline, "the dead trial was never declared lost"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_dead_trial_of_a_machine_an_hour_ahead_is_lost_after_its_lease(kleio, script, machine):
    ahead, right = machine("ahead", 3600.0), machine("right", 0.0)
    tid = _dies_holding(kleio, script, ahead)
    # Its lease (2 s) was granted an hour ahead on the daemon's clock until leases were
    # measured on the database's.
    _until_lost(kleio, right, tid)


@pytest.mark.parametrize("machine", ["mongodb"], indirect=True)
def test_a_transaction_left_open_on_a_trial_never_stalls_another_daemon(kleio, script, machine):
    """A daemon that dies inside a transaction leaves the trial's document held until the
    server ends the transaction (a minute, on mongod).  Another daemon that expires the
    trial's lease meanwhile keeps answering, and declares it lost once it is free."""
    import pymongo

    dead, alive = machine("dead", 0.0), machine("alive", 0.0)
    tid = _dies_holding(kleio, script, dead)
    client: pymongo.MongoClient = pymongo.MongoClient(dead["KLEIO_DATABASE"])
    try:
        with client.start_session() as session:
            session.start_transaction()
            # What a daemon's append writes first: its fencing check on the trial.
            trials = client.get_default_database().trials
            trials.update_one({"_id": tid}, {"$inc": {"appends": 1}}, session=session)
            assert _status(kleio, alive, tid) == "running"
            log = Path(alive["XDG_RUNTIME_DIR"]) / "kleio" / "kleiod.log"
            deadline = time.monotonic() + 60
            while "an unfinished transaction holds it" not in log.read_text():
                assert time.monotonic() < deadline, "no sweep met the held trial"
                time.sleep(0.1)
            assert _status(kleio, alive, tid) == "running"  # answered, not stalled
            session.abort_transaction()
    finally:
        client.close()
    _until_lost(kleio, alive, tid)
