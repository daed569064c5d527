"""A trial outlives its terminal and its daemon: nothing it logs or prints is lost."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.conftest import signal_daemon, trial_id, wait_for_line

STEPS = 3000

STEADY = f"""
import os, sys, time
from kleio_client import kleio_logger
HOLD_AT = int(os.environ.get("HOLD_AT", "-1"))
print("started", flush=True)
for step in range({STEPS}):
    if step == HOLD_AT:  # printing nothing, until the test creates the file `go`
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    kleio_logger.log_statistic(step=step, loss=1.0 / (step + 1))
    print(f"step {{step}}", flush=True)
    time.sleep(0.001)
print("done", flush=True)
"""


def _expected_output() -> str:
    return "started\n" + "".join(f"step {s}\n" for s in range(STEPS)) + "done\n"


def _wait_until_ended(kleio, tid: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = kleio.json("info", tid)
        if info["status"] != "running":
            return info
        assert time.monotonic() < deadline, "the trial did not end"
        time.sleep(0.2)


def _assert_complete_journal(kleio, tid: str) -> None:
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(STEPS))
    assert kleio.ok("cat", tid).stdout == _expected_output()
    status = kleio.json("daemon", "status")
    assert status["refused_records"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kleio daemon stop", "SIGINT", "SIGKILL"])
def test_a_trial_survives_a_daemon_restart(kleio, script, isolated, workdir, monkeypatch, how):
    """The daemon goes away mid-run (stopped, terminated or killed) and a new one starts:
    the trial runs on, the new daemon takes its output, statistics and exit code, and
    every record is in the journal once."""
    monkeypatch.setenv("HOLD_AT", "1000")  # mid-run when the daemon goes, however slow
    name = script(STEADY)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "step 500")
    if how == "kleio daemon stop":
        kleio.ok("daemon", "stop")
    else:
        signal_daemon(isolated.kleio_runtime, getattr(signal, how))
    (workdir / "go").touch()
    time.sleep(0.5)  # the trial goes on logging with no daemon
    kleio.ok("daemon", "start")
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err
    assert out.decode().endswith("done\n")
    tid = trial_id(err.decode())
    info = _wait_until_ended(kleio, tid)
    assert info["status"] == "completed"
    assert info["executions"][-1]["exit_code"] == 0
    _assert_complete_journal(kleio, tid)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP])
def test_the_trial_outlives_the_kleio_process_in_front_of_it(
    kleio, script, workdir, monkeypatch, signum
):
    """The foreground `kleio` killed (or its terminal hung up): the trial keeps running, is
    followed again with `kleio tail -f`, and ends completed with all its output."""
    monkeypatch.setenv("HOLD_AT", "1000")  # still running when asked, however slow the test
    name = script(STEADY)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "step 300")
    run.send_signal(signum)
    run.wait(timeout=60)
    tid = kleio.json("ls")[0]["id"]
    assert kleio.json("info", tid)["status"] == "running"
    (workdir / "go").touch()
    follow = kleio("tail", "-f", "-n", "all", tid, timeout=90)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == _expected_output()
    info = _wait_until_ended(kleio, tid)
    assert info["status"] == "completed"
    _assert_complete_journal(kleio, tid)


def test_ctrl_c_still_interrupts_and_a_second_one_kills(kleio, script):
    name = script("""
        import signal, time
        signal.signal(signal.SIGINT, lambda *a: print("ignoring", flush=True))
        print("up", flush=True)
        while True:
            time.sleep(0.1)
    """)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "up")
    run.send_signal(signal.SIGINT)
    wait_for_line(run.stdout, "ignoring")
    time.sleep(0.1)  # a person's second Ctrl-C: slower than one signal's echo
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGKILL
    info = kleio.json("info", trial_id(err.decode()))
    assert info["status"] == "interrupted"
    assert info["executions"][-1]["signals"] == ["SIGINT", "SIGINT"]


@pytest.mark.slow
def test_a_killed_kleio_stops_echoing_into_the_terminal_it_left(
    kleio, script, tmp_path, workdir, monkeypatch
):
    """Once the `kleio` in front is gone, the supervisor writes nothing more where it was."""
    monkeypatch.setenv("HOLD_AT", "101")  # silent from step 100 on until the test says go
    name = script(STEADY)
    out = tmp_path / "terminal"
    with open(out, "wb") as terminal:
        run = subprocess.Popen(
            kleio.argv("python", name), cwd=kleio.cwd, stdout=terminal, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while b"step 100\n" not in out.read_bytes():  # all it printed before it holds
            assert time.monotonic() < deadline, "'step 100' never reached the terminal"
            time.sleep(0.02)
        run.kill()
        run.wait(timeout=60)
    size = out.stat().st_size
    (workdir / "go").touch()  # the trial prints on, with the `kleio` in front gone
    tid = kleio.json("ls")[0]["id"]
    _wait_until_ended(kleio, tid)
    assert out.stat().st_size == size
    assert b"done" not in out.read_bytes()


def test_artifacts_being_uploaded_when_the_daemon_dies_are_sent_again(kleio, script, isolated):
    """Uploads run back to back while the daemon is killed: the upload in flight starts
    again with the next daemon, and every artifact is stored whole."""
    import hashlib

    name = script("""
        import io
        from kleio_client import kleio_logger
        for i in range(12):
            blob = bytes([i]) * (6 * 1024 * 1024 + i)
            kleio_logger.log_artifact("blob.bin", io.BytesIO(blob), index=i)
            print(f"stored {i}", flush=True)
    """)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "stored 2")
    signal_daemon(isolated.kleio_runtime)
    kleio.ok("daemon", "start")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    tid = trial_id(err.decode())
    stored = {a["metadata"]["index"]: a["sha256"] for a in kleio.json("artifacts", tid)}
    assert stored == {
        i: hashlib.sha256(bytes([i]) * (6 * 1024 * 1024 + i)).hexdigest() for i in range(12)
    }


@pytest.mark.slow
def test_the_supervisor_starts_a_daemon_when_none_comes_back(
    kleio, script, isolated, workdir, monkeypatch
):
    """The daemon is killed and nobody starts another: the trial's supervisor does, and
    the trial's records and end reach the journal."""
    from kleio_runtime import lock

    # Near the end (its flush waits for a daemon), and not ended before the kill.
    monkeypatch.setenv("HOLD_AT", "2901")
    name = script(STEADY)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "step 2900")
    killed = signal_daemon(isolated.kleio_runtime)
    (workdir / "go").touch()
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err
    assert lock.is_held(isolated.kleio_runtime)
    assert lock.holder_pid(isolated.kleio_runtime) != killed
    tid = trial_id(err.decode())
    assert _wait_until_ended(kleio, tid)["status"] == "completed"
    _assert_complete_journal(kleio, tid)


@pytest.mark.slow
def test_tail_follows_on_across_a_daemon_restart(kleio, script, workdir, monkeypatch):
    monkeypatch.setenv("HOLD_AT", "1000")  # still running when the daemon stops
    name = script(STEADY)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "step 100")
    tid = kleio.json("ls")[0]["id"]
    follow = kleio.popen("tail", "-f", "-n", "all", tid)
    seen = wait_for_line(follow.stdout, "step 500")
    kleio.ok("daemon", "stop")
    (workdir / "go").touch()
    time.sleep(0.3)  # it prints on with no daemon
    kleio.ok("daemon", "start")
    run.communicate(timeout=90)
    out, err = follow.communicate(timeout=90)
    assert follow.returncode == 0, err
    assert seen + out.decode() == _expected_output()  # no line missed, none twice


FLOOD = """
import sys, time
from kleio_client import kleio_logger
for block in range(300):
    for i in range(1000):
        kleio_logger.log_statistic(step=block * 1000 + i, loss=1.0 / (i + 1))
    print(f"block {block}", flush=True)
    print(f"err {block}", file=sys.stderr, flush=True)
    time.sleep(0.005)
"""


@pytest.mark.slow
def test_the_daemon_killed_twice_in_a_flood_loses_and_doubles_nothing(kleio, script, isolated):
    """kill -9 of the daemon at two points of a flood of 300,000 records: every record
    and every line is journaled exactly once, and the journal passes integrity_check."""
    import sqlite3

    name = script(FLOOD)
    run = kleio.popen("python", name)
    for mark in ("block 40", "block 150"):
        wait_for_line(run.stdout, mark)
        signal_daemon(isolated.kleio_runtime)
        kleio.ok("daemon", "start")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    tid = trial_id(err.decode())
    _wait_until_ended(kleio, tid)
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(300_000))
    out = kleio.ok("cat", tid, "--stream", "stdout").stdout
    assert out == "".join(f"block {b}\n" for b in range(300))
    errors = kleio.ok("cat", tid, "--stream", "stderr").stdout
    assert errors == "".join(f"err {b}\n" for b in range(300))
    with sqlite3.connect(isolated.journal) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
