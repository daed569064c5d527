"""Records reach the journal while the script runs, not only at its exit."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import trial_id, wait_for_line


def _poll(kleio, *args: str, until, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        done = kleio(*args)
        if done.returncode == 0 and until(done.stdout):
            return done.stdout
        assert time.monotonic() < deadline, f"timed out: {done.stdout!r} {done.stderr!r}"
        time.sleep(0.1)


def test_statistics_and_output_are_visible_while_the_trial_runs(kleio, script):
    name = script("""
        import time
        from kleio_client import kleio_logger
        for epoch in range(5):
            kleio_logger.log_statistic(epoch=epoch)
        print("waiting", flush=True)
        time.sleep(300)  # until the test interrupts it: each poll may take a minute
    """)
    proc = kleio.popen("python", name)
    try:
        wait_for_line(proc.stdout, "waiting")
        tid = _poll(kleio, "ls", "--json", until=lambda out: json.loads(out))
        tid = json.loads(tid)[0]["id"]
        _poll(kleio, "stats", tid, "--json", until=lambda out: len(json.loads(out)) == 5)
        _poll(kleio, "cat", tid, until=lambda out: out == "waiting\n")
        assert kleio.json("info", tid)["status"] == "running"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_a_sigkilled_script_loses_at_most_the_last_flush_interval(kleio, script, workdir):
    name = script("""
        import os, signal, time
        from kleio_client import kleio_logger
        for step in range(1000):
            kleio_logger.log_statistic(step=step)
        print("logged", flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):  # flushed meanwhile, with no exit to flush them
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "logged")
    tid = kleio.json("ls")[0]["id"]
    _poll(kleio, "stats", tid, "--json", until=lambda out: len(json.loads(out)) == 1000)
    (workdir / "go").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL
    assert trial_id(err.decode()) == tid
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(1000))
    info = kleio.json("info", tid)
    assert (info["status"], info["executions"][0]["exit_signal"]) == ("broken", "SIGKILL")
    assert "died of SIGKILL" in kleio.ok("info", tid).stdout


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(5))
def test_sigterm_in_a_tight_logging_loop_flushes_without_deadlock(kleio, script, attempt):
    name = script("""
        from kleio_client import kleio_logger
        step = 0
        while True:
            step += 1
            kleio_logger.log_statistic(step=step, loss=0.5, tag="x")
            if step == 20000:
                print("ready", flush=True)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready", timeout=60)
    time.sleep(0.05 * attempt)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    tid = trial_id(err.decode())
    steps = [r["step"] for r in kleio.json("stats", tid)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 20000
    assert kleio.json("info", tid)["status"] == "interrupted"
