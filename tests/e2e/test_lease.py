"""Leases: heartbeats keep a long trial owned; a dead supervisor's trial becomes lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import first_to_exit, trial_id, wait_for_line

SLEEPER = """
    import os, time
    print("ready", flush=True)
    if os.environ["KLEIO_EXECUTION"] == "1":  # runs until the test creates the file `go`
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
"""


@pytest.mark.slow
def test_heartbeats_keep_a_trial_running_past_its_lease(kleio, script, workdir, monkeypatch):
    # A heartbeat every 0.5 s: a 2 s lease survives a heartbeat late by 1.5 s on a busy machine.
    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "2")
    name = script(SLEEPER)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    time.sleep(4.5)  # more than two leases
    second = kleio("python", name)
    assert second.returncode == 4, second.stderr
    assert "already running" in second.stderr
    (workdir / "go").touch()
    assert proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_a_killed_supervisor_leaves_a_lost_trial_that_resumes(kleio, script, monkeypatch):
    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "1")
    name = script(SLEEPER)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    cli = psutil.Process(proc.pid)
    family = [cli, *cli.children(recursive=True)]
    for member in family:
        member.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while kleio.json("info", trial_id(err.decode()))["status"] != "lost":  # swept, no rerun
        assert time.monotonic() < deadline, "the killed execution was never declared lost"
        time.sleep(0.2)
    again = kleio("python", name)
    assert again.returncode == 0, again.stderr
    assert "resuming the lost trial as execution 2" in again.stderr
    info = kleio.json("info", trial_id(err.decode()))
    assert [e["status"] for e in info["executions"]] == ["lost", "completed"]


@pytest.mark.slow
def test_two_daemons_sharing_one_sqlite_file_let_exactly_one_run(kleio, script, tmp_path, workdir):
    journal = tmp_path / "shared.sqlite"
    name = script("""
        import os, sys, time
        deadline = time.monotonic() + 300
        while not os.path.exists("go-" + sys.argv[1]):  # runs until the other is refused
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    """)
    envs = []
    for _ in range(2):
        runtime = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
        envs.append(
            {
                **os.environ,
                "XDG_RUNTIME_DIR": str(runtime),
                "KLEIO_DATABASE": f"sqlite:///{journal}",
            }
        )
    try:
        for seed in range(4):
            procs = [
                subprocess.Popen(
                    kleio.argv("python", name, str(seed)),
                    cwd=kleio.cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for env in envs
            ]
            first_to_exit(procs)
            (workdir / f"go-{seed}").touch()
            codes = sorted(p.wait(timeout=60) for p in procs)
            assert codes == [0, 4]
    finally:
        for env in envs:
            subprocess.run(
                [sys.executable, "-m", "kleio_cli", "daemon", "stop"],
                env=env,
                capture_output=True,
                timeout=30,
            )
