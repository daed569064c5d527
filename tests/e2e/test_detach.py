"""Detached trials: `kleio run -d` returns once reserved; the daemon runs the trial."""

from __future__ import annotations

import time

import pytest

from tests.conftest import trial_id

SLOW = """
import os, sys, time
from kleio_client import kleio_logger
ckpt = kleio_logger.load_artifact("ckpt.txt")
start = 0 if ckpt is None else int(ckpt.open().read()) + 1
print("cwd", os.getcwd(), "flavour", os.environ.get("FLAVOUR"), "from", start, flush=True)
for step in range(start, 8):
    kleio_logger.log_statistic(step=step)
    print(f"step {step}", flush=True)
    import io
    kleio_logger.log_artifact("ckpt.txt", io.BytesIO(str(step).encode()), step=step)
    if step == 3 and start == 0:
        sys.exit(2)
    time.sleep(0.05)
"""


def _wait_status(kleio, tid: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (info := kleio.json("info", tid))["status"] == "running":
        assert time.monotonic() < deadline, "the detached trial did not end"
        time.sleep(0.1)
    return info


def test_run_detached_returns_the_id_at_once_and_the_daemon_runs_it(
    kleio, script, workdir, monkeypatch
):
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        print("cwd", os.getcwd(), "flavour", os.environ.get("FLAVOUR"), flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):  # runs until the test has seen it running
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
        for step in range(20):
            kleio_logger.log_statistic(step=step)
            time.sleep(0.1)
        print("finished")
    """)
    monkeypatch.setenv("FLAVOUR", "vanilla")
    started = time.monotonic()
    done = kleio.ok("run", "--detach", "python", name)
    assert time.monotonic() - started < 30  # the trial itself runs until the test says go
    tid = done.stdout.strip()
    assert tid == trial_id(done.stderr)
    assert kleio.json("info", tid)["status"] == "running"
    (workdir / "go").touch()
    follow = kleio.ok("tail", "-f", "-n", "all", tid, timeout=60)
    assert follow.stdout == f"cwd {workdir} flavour vanilla\nfinished\n"
    info = _wait_status(kleio, tid)
    assert info["status"] == "completed"
    assert info["executions"][0]["exit_code"] == 0
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(20))


@pytest.mark.slow
def test_prefix_form_exec_and_branch_detach_too(kleio, script):
    name = script(SLOW)
    tid = kleio.ok("-d", "python", name).stdout.strip()
    info = _wait_status(kleio, tid)
    assert info["status"] == "broken" and info["executions"][0]["exit_code"] == 2

    assert kleio.ok("exec", "-d", tid[:8]).stdout.strip() == tid  # resumes, detached
    assert _wait_status(kleio, tid)["status"] == "completed"
    assert "from 4" in kleio.ok("cat", tid).stdout
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(8))

    child = kleio.ok("branch", tid[:8], "--timestamp", "step=5", "-d").stdout.strip()
    assert child != tid
    assert _wait_status(kleio, child)["status"] == "completed"
    assert "from 6" in kleio.ok("cat", child).stdout


@pytest.mark.slow
def test_a_detached_trial_outlives_a_daemon_restart(kleio, script, workdir):
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        for step in range(60):
            if step == 20:  # the rest once the daemon is stopped
                deadline = time.monotonic() + 300
                while not os.path.exists("go"):
                    assert time.monotonic() < deadline, "the test never released the trial"
                    time.sleep(0.01)
            kleio_logger.log_statistic(step=step)
            print(f"step {step}", flush=True)
            time.sleep(0.05)
    """)
    tid = kleio.ok("run", "-d", "python", name).stdout.strip()
    deadline = time.monotonic() + 60
    while "step 19\n" not in kleio.ok("cat", tid).stdout:
        assert time.monotonic() < deadline, "the detached trial never logged step 19"
        time.sleep(0.1)
    kleio.ok("daemon", "stop")
    (workdir / "go").touch()  # it logs on with no daemon
    time.sleep(0.3)
    kleio.ok("daemon", "start")
    info = _wait_status(kleio, tid)
    assert info["status"] == "completed"
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(60))
    assert kleio.ok("cat", tid).stdout == "".join(f"step {s}\n" for s in range(60))


def test_a_detached_command_that_does_not_exist_is_refused_before_it_is_a_trial(kleio):
    done = kleio("run", "-d", "no-such-program-xyz")
    assert done.returncode == 127
    assert kleio.json("ls") == []


def test_detach_inside_a_slurm_job_is_refused_before_it_is_a_trial(kleio, script):
    """The daemon's child would run outside the job: its allocation, limits and end."""
    import os

    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    done = kleio("-d", "python", script("print('ran')\n"), env=env)
    assert done.returncode == 2
    assert "inside SLURM job 4242" in done.stderr and "foreground" in done.stderr
    assert kleio.json("ls") == []
