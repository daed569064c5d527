"""Ctrl-C and SIGTERM: the trial is interrupted, its records kept, and it resumes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from tests.conftest import trial_id, wait_for_line

LOOPS_UNTIL_INTERRUPTED = """
    import time
    from kleio_client import kleio_logger
    step = 0
    while True:
        step += 1
        kleio_logger.log_statistic(step=step)
        if step == 50:
            print("ready", flush=True)
        time.sleep(0.001)
"""


def test_ctrl_c_interrupts_the_trial_and_keeps_its_records(kleio, script):
    name = script(LOOPS_UNTIL_INTERRUPTED)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"KeyboardInterrupt" in err
    tid = trial_id(err.decode())
    info = kleio.json("info", tid)
    assert info["status"] == "interrupted"
    assert info["executions"][0]["signals"] == ["SIGINT"]
    steps = [r["step"] for r in kleio.json("stats", tid)]
    assert steps == list(range(1, len(steps) + 1))
    assert len(steps) >= 50


def test_interrupted_trial_resumes_on_rerun(kleio, script):
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(execution=int(os.environ["KLEIO_EXECUTION"]))
        if os.environ["KLEIO_EXECUTION"] == "1":
            print("ready", flush=True)
            time.sleep(60)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    again = kleio("python", name)
    assert again.returncode == 0, again.stderr
    assert "resuming the interrupted trial as execution 2" in again.stderr
    tid = trial_id(again.stderr)
    assert kleio.json("stats", tid) == [{"execution": 2}]  # restarted: loaded nothing
    everything = json.loads(kleio.ok("stats", tid, "--all-executions", "--json").stdout)
    assert [(r["execution"], r["superseded"], r["record"]) for r in everything] == [
        (1, True, {"execution": 1}),
        (2, False, {"execution": 2}),
    ]


def test_a_script_that_catches_sigterm_and_exits_0_is_interrupted(kleio, script):
    name = script("""
        import signal, sys, time
        from kleio_client import kleio_logger
        def checkpoint(signum, frame):
            kleio_logger.log_statistic(checkpointed=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, checkpoint)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    tid = trial_id(err.decode())
    assert kleio.json("info", tid)["status"] == "interrupted"
    assert kleio.json("stats", tid) == [{"checkpointed": True}]


def test_second_ctrl_c_kills_a_trial_that_ignores_the_first(kleio, script):
    name = script("""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 128 + signal.SIGKILL
    info = kleio.json("info", trial_id(err.decode()))
    assert info["status"] == "interrupted"
    assert info["executions"][0]["signals"] == ["SIGINT", "SIGINT"]


def test_ctrl_c_typed_in_a_real_terminal_interrupts_the_trial(kleio, script):
    """The terminal driver sends SIGINT to the foreground process group, as for a person."""
    import os
    import pty

    name = script(LOOPS_UNTIL_INTERRUPTED)
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as controlling terminal
        os.chdir(kleio.cwd)
        os.execv(kleio.argv()[0], kleio.argv("python", name))
    try:
        seen = b""
        while b"ready" not in seen:
            seen += os.read(master, 4096)
        os.write(master, b"\x03")  # Ctrl-C
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130, seen
    assert b"KeyboardInterrupt" in seen
    tid = trial_id(seen.decode(errors="replace").replace("\r", ""))
    assert kleio.json("info", tid)["status"] == "interrupted"


@pytest.mark.slow
def test_ctrl_z_suspends_the_trial_and_sigcont_resumes_it(kleio, script):
    import os
    import pty

    import psutil

    name = script("""
        import time
        from kleio_client import kleio_logger
        print("ready", flush=True)
        for step in range(30):
            kleio_logger.log_statistic(step=step)
            time.sleep(0.1)
        print("finished", flush=True)
    """)
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(kleio.cwd)
        os.execv(kleio.argv()[0], kleio.argv("python", name))
    seen = b""
    while b"ready" not in seen:
        seen += os.read(master, 4096)
    os.write(master, b"\x1a")  # Ctrl-Z
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    trial = next(
        p for p in psutil.Process(pid).children(recursive=True) if p.cmdline()[1:] == [name]
    )
    deadline = time.monotonic() + 10
    while trial.status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline, trial.status()
        time.sleep(0.05)
    os.kill(pid, signal.SIGCONT)  # what `fg` sends
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"finished" in seen
    tid = trial_id(seen.decode(errors="replace").replace("\r", ""))
    assert len(kleio.json("stats", tid)) == 30
    assert kleio.json("info", tid)["status"] == "completed"


def test_a_trial_that_interrupts_itself_is_interrupted_and_resumes_each_step_once(kleio, script):
    """Its own process dies of SIGINT, no supervisor involved: interrupted, resumable."""
    name = script("""
        import io, os, signal
        from kleio_client import kleio_logger
        ckpt = kleio_logger.load_artifact("ckpt")
        start = 0 if ckpt is None else int(ckpt.open().read()) + 1
        for step in range(start, 10):
            kleio_logger.log_statistic(step=step)
            kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % step), step=step)
            if step == 4 and os.environ["KLEIO_EXECUTION"] == "1":
                os.kill(os.getpid(), signal.SIGINT)
    """)
    first = kleio("python", name)
    assert first.returncode == 130, first.stderr
    tid = trial_id(first.stderr)
    info = kleio.json("info", tid)
    assert info["status"] == "interrupted"
    assert info["executions"][0]["signals"] == []  # the supervisor forwarded nothing
    assert info["executions"][0]["exit_signal"] == "SIGINT"
    again = kleio("python", name)
    assert again.returncode == 0, again.stderr
    assert "resuming the interrupted trial as execution 2" in again.stderr
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(10))
    assert kleio.json("info", tid)["status"] == "completed"


def test_a_sigterm_sent_to_the_script_itself_is_interrupted(kleio, script):
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        for step in range(1000):
            kleio_logger.log_statistic(step=step)
        print(os.getpid(), flush=True)
        time.sleep(60)
    """)
    proc = kleio.popen("python", name)
    pid = int(wait_for_line(proc.stdout, "\n").split()[0])
    os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    tid = trial_id(err.decode())
    info = kleio.json("info", tid)
    assert (info["status"], info["executions"][0]["exit_signal"]) == ("interrupted", "SIGTERM")
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(1000))


def test_a_shell_exiting_130_after_its_python_child_was_interrupted_is_interrupted(
    kleio, script, workdir
):
    """The launcher case: the shell is the trial's process and exits 130; the child that
    received SIGINT journaled it."""
    script(
        """
        import os, signal
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=0)
        os.kill(os.getpid(), signal.SIGINT)
    """,
        name="child.py",
    )
    (workdir / "launch.sh").write_text(f"{sys.executable} child.py\n")
    done = kleio("sh", "launch.sh")
    assert done.returncode == 130, done.stderr
    tid = trial_id(done.stderr)
    info = kleio.json("info", tid)
    assert (info["status"], info["executions"][0]["exit_signal"]) == ("interrupted", None)
    assert kleio.json("stats", tid) == [{"step": 0}]


def test_exiting_130_with_no_signal_anywhere_is_broken(kleio):
    done = kleio("sh", "-c", "exit 130")
    assert done.returncode == 130
    assert kleio.json("info", trial_id(done.stderr))["status"] == "broken"
