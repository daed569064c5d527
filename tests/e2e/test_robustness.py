"""What a second review broke, kept broken-proof: forks that exec, huge batches,
late children, paused machines, an absent daemon at the end, late records, odd input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import signal_daemon, trial_id, wait_for_line


def test_subprocesses_forked_after_logging_never_trip_over_the_client(kleio, script):
    name = script("""
        import os, subprocess
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(started=True)
        codes = [subprocess.run(["true"], preexec_fn=os.setpgrp).returncode for _ in range(150)]
        kleio_logger.log_statistic(failures=sum(1 for c in codes if c != 0))
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    assert "Assertion failed" not in done.stderr
    assert kleio.json("stats", trial_id(done.stderr)) == [{"started": True}, {"failures": 0}]


@pytest.mark.slow
def test_batches_are_cut_by_size_and_an_oversized_record_is_refused_at_the_call(kleio, script):
    name = script("""
        from kleio_client import kleio_logger
        blob = "x" * 20_000
        for i in range(5000):
            kleio_logger.log_statistic(i=i, blob=blob)
        for huge in ({"huge": "y" * 40_000_000}, {"many": ["z" * 1_000_000] * 20}):
            try:
                kleio_logger.log_statistic(**huge)
            except ValueError as exc:
                print("refused:", exc)
        kleio_logger.log_statistic(after=True)
    """)
    done = kleio("python", name, timeout=300)
    assert done.returncode == 0, done.stderr
    refusals = done.stdout.splitlines()
    assert "cannot log huge: a string of 40000000 characters" in refusals[0]
    assert "the limit is" in refusals[1] and "as an artifact" in refusals[1]
    tid = trial_id(done.stderr)
    records = kleio.json("stats", tid)
    assert [r["i"] for r in records[:-1]] == list(range(5000))
    assert records[-1] == {"after": True}


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_workers_whose_parent_logs_only_later_keep_their_records(kleio, script, method):
    name = script(f"""
        import multiprocessing as mp
        from kleio_client import kleio_logger

        def work(worker):
            for i in range(1000):
                kleio_logger.log_statistic(worker=worker, i=i)

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            workers = [ctx.Process(target=work, args=(w,)) for w in range(4)]
            for p in workers:
                p.start()
            for p in workers:
                p.join()
            kleio_logger.log_statistic(worker=-1, i=0)
    """)
    done = kleio("python", name, method)
    assert done.returncode == 0, done.stderr
    assert len(kleio.json("stats", trial_id(done.stderr))) == 4001


def _wait_for_trial_status(kleio, wanted: str, why: str) -> dict:
    deadline = time.monotonic() + 60
    while (trial := kleio.json("ls")[0])["status"] != wanted:
        assert time.monotonic() < deadline, f"{why}: the trial stayed {trial['status']}"
        time.sleep(0.1)
    return trial


def test_a_paused_supervisor_is_taken_back_when_it_wakes(kleio, script, workdir, monkeypatch):
    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "1")
    name = script("""
        import os, time
        print("ready", flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):  # runs on until the test has seen it taken back
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    """)
    kleio.ok("daemon", "start")
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    cli = psutil.Process(proc.pid)
    supervisor = next(p for p in cli.children() if p.cmdline() == cli.cmdline())  # forked
    supervisor.suspend()  # a laptop lid closed, a VM paused
    try:
        trial = _wait_for_trial_status(kleio, "lost", "no heartbeat for many leases")
        assert len(kleio.json("ls")) == 1
    finally:
        supervisor.resume()
    _wait_for_trial_status(kleio, "running", "the woken supervisor's heartbeat")
    (workdir / "go").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    info = kleio.json("info", trial["id"])
    assert info["status"] == "completed"
    assert [e["status"] for e in info["executions"]] == ["completed"]


@pytest.mark.slow
def test_a_daemon_killed_at_the_end_does_not_hold_kleio_for_long(
    kleio, script, isolated, workdir, monkeypatch
):
    from kleio_runtime.lock import PidLock

    # The script's flush waits 4 s, then the supervisor's (4 s) and its report of the end
    # (4 s): time enough for the daemon it starts, 3 to 4 s after the lock is let go.
    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "4")
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(x=1)
        print("ready", flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
        kleio_logger.log_statistic(x=2)
    """)
    proc = kleio.popen("python", name)
    wait_for_line(proc.stdout, "ready")
    signal_daemon(isolated.kleio_runtime)
    started = time.monotonic()
    # The lock held here: the supervisor starts no daemon until the script's flush has
    # given up, however slowly the script gets there.
    held = PidLock(isolated.kleio_runtime)
    held.acquire()
    try:
        (workdir / "go").touch()
        told = wait_for_line(proc.stderr, "they are kept in")
    finally:
        held.release()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 20  # about 8 s of bounds; the default waits 30 s
    err = told.encode() + err
    # The script left what was not acknowledged in its spill; the supervisor started a
    # daemon that recorded the end, and took the spill in.
    assert b"they are kept in" in err
    tid = trial_id(err.decode())
    deadline = time.monotonic() + 60
    while [r["x"] for r in kleio.json("stats", tid)] != [1, 2]:
        assert time.monotonic() < deadline, "the spill's records never reached the journal"
        time.sleep(0.2)
    assert kleio.json("info", tid)["status"] == "completed"


@pytest.mark.slow
def test_a_sigterm_after_the_trial_ended_still_lets_its_end_be_recorded(
    kleio, script, isolated, workdir, monkeypatch
):
    """The end of a batch job signals every process: a supervisor may take its SIGTERM
    after its trial died, and it once stopped waiting for the daemon then (as for a
    Ctrl-C), so that the trial showed as lost."""
    from kleio_runtime.lock import PidLock

    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "8")
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(x=1)
        print("pid", os.getpid(), "up", flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    """)
    proc = kleio.popen("python", name)
    trial = psutil.Process(int(wait_for_line(proc.stdout, " up").split()[1]))
    supervisor = trial.ppid()
    signal_daemon(isolated.kleio_runtime)
    held = PidLock(isolated.kleio_runtime)  # no daemon comes back until the SIGTERM went
    held.acquire()
    try:
        (workdir / "go").touch()
        deadline = time.monotonic() + 60
        while psutil.pid_exists(trial.pid):  # reaped: the supervisor knows it ended
            assert time.monotonic() < deadline, "the supervisor never reaped its trial"
            time.sleep(0.02)
        os.kill(supervisor, signal.SIGTERM)
    finally:
        held.release()
    err = proc.communicate(timeout=120)[1].decode()
    assert "did not record the end" not in err, err
    assert kleio.json("info", trial_id(err))["status"] == "completed"


def test_a_record_logged_after_the_exit_flush_is_kept(kleio, script):
    name = script("""
        import atexit
        from kleio_client import kleio_logger
        atexit.register(lambda: kleio_logger.log_statistic(late=True))  # runs after kleio's
        kleio_logger.log_statistic(early=True)
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    assert kleio.json("stats", trial_id(done.stderr)) == [{"early": True}, {"late": True}]


def test_closed_standard_streams_and_odd_input_get_clear_answers(kleio, script, workdir):
    name = script("print('fine')\n")
    closed = subprocess.run(
        f"{sys.executable} -m kleio_cli python {name} >&-",
        shell=True,
        cwd=workdir,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert closed.returncode == 0, closed.stderr
    assert "Traceback" not in closed.stderr
    again = kleio("python", name)
    assert "is completed" in again.stderr  # the reservation was not left behind
    (workdir / "plain.py").write_text("print(1)\n")
    not_executable = kleio("./plain.py")
    assert not_executable.returncode == 126 and "not executable" in not_executable.stderr
    bad_stream = kleio("cat", "abcd", "--stream", "foo")
    assert bad_stream.returncode == 2
    raw = subprocess.run(
        [*kleio.argv("python", "-c", "pass"), b"\xff".decode("utf-8", "surrogateescape")],
        cwd=workdir,
        capture_output=True,
        timeout=60,
    )
    assert raw.returncode == 2 and b"not valid UTF-8" in raw.stderr
    assert b"Traceback" not in raw.stderr
