"""Records reach the journal while the script runs, not only at its exit."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import trial_id, wait_for_line


def _poll(kleio, *args: str, until, timeout: float = 10.0):
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
        time.sleep(60)
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
        proc.communicate(timeout=30)


def test_a_sigkilled_script_loses_at_most_the_last_flush_interval(kleio, script):
    name = script("""
        import os, signal, time
        from kleio_client import kleio_logger
        for step in range(1000):
            kleio_logger.log_statistic(step=step)
        time.sleep(0.5)  # many flush intervals
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = kleio("python", name)
    assert done.returncode == 128 + signal.SIGKILL
    tid = trial_id(done.stderr)
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(1000))
    assert kleio.json("info", tid)["status"] == "broken"


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


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_records_from_multiprocessing_workers_all_arrive_once(kleio, script, start_method):
    name = script(f"""
        import multiprocessing as mp
        from kleio_client import kleio_logger

        def work(worker):
            for i in range(5000):
                kleio_logger.log_statistic(worker=worker, i=i)
            return worker

        if __name__ == "__main__":
            kleio_logger.log_statistic(worker=-1, i=0)
            # leaving `with` terminates the workers right after their last records
            with mp.get_context("{start_method}").Pool(3) as pool:
                assert sorted(pool.map(work, range(6))) == list(range(6))
            kleio_logger.log_statistic(worker=-1, i=1)
    """)
    done = kleio("python", name, start_method)
    assert done.returncode == 0, done.stderr
    records = kleio.json("stats", trial_id(done.stderr))
    pairs = sorted((r["worker"], r["i"]) for r in records)
    assert pairs == sorted([(-1, 0), (-1, 1)] + [(w, i) for w in range(6) for i in range(5000)])


def test_a_forked_child_logs_under_its_own_producer(kleio, script):
    name = script("""
        import os
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(who="parent", n=0)
        pid = os.fork()
        if pid == 0:
            kleio_logger.log_statistic(who="child", n=0)
            raise SystemExit(0)
        os.waitpid(pid, 0)
        kleio_logger.log_statistic(who="parent", n=1)
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    records = kleio.json("stats", trial_id(done.stderr))
    assert sorted((r["who"], r["n"]) for r in records) == [
        ("child", 0), ("parent", 0), ("parent", 1)]

