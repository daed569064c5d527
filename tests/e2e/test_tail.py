"""`kleio tail`: the last lines of a trial, then its output live through the daemon's pub/sub."""

from __future__ import annotations

import signal
import subprocess
import time

import msgpack
import pytest

from tests.conftest import trial_id, wait_for_line

NOISY = """
    import sys, time
    from kleio_client import kleio_logger
    for i in range({count}):
        print(f"out {{i}}", flush=i % 7 == 0)
        if i % 5 == 0:
            print(f"err {{i}}", file=sys.stderr)
        kleio_logger.log_statistic(step=i, loss=1.0 / (i + 1))
        if i % {every} == 0:
            time.sleep(0.01)
    print("end")
"""


def _running_id(kleio) -> str:
    deadline = time.monotonic() + 60
    while True:
        trials = kleio.json("ls")
        if trials:
            return str(trials[0]["id"])
        assert time.monotonic() < deadline, "no trial appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_tail_shows_the_last_lines_of_a_finished_trial(kleio, script, workdir):
    # Lines count across both streams, in journal order: stderr first, then stdout.
    name = script("""
        import os, sys, time
        for i in range(0, 50, 5):
            print(f"err {i}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):  # until its stderr is in the journal
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
        for i in range(50):
            print(f"out {i}")
        print("end")
    """)
    run = kleio.popen("python", name)
    tid = _running_id(kleio)
    deadline = time.monotonic() + 60
    while "err 45\n" not in kleio.ok("cat", tid, "--stream", "stderr").stdout:
        assert time.monotonic() < deadline, "the trial's stderr never reached the journal"
        time.sleep(0.05)
    (workdir / "go").touch()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert trial_id(err.decode()) == tid
    assert kleio.ok("tail", "-n", "3", tid).stdout == "out 48\nout 49\nend\n"
    assert kleio.ok("tail", "-n", "1", tid[:6]).stdout == "end\n"
    assert kleio.ok("tail", "-n", "0", tid).stdout == ""
    everything = kleio.ok("tail", "-n", "all", tid)
    assert everything.stdout == kleio.ok("cat", tid, "--stream", "stdout").stdout
    assert everything.stderr == kleio.ok("cat", tid, "--stream", "stderr").stdout
    assert "err 45\n" in everything.stderr and "err 45" not in everything.stdout


def test_tail_without_a_final_newline_counts_the_last_partial_line(kleio, script):
    name = script("""
        import sys
        for i in range(5):
            sys.stdout.write(f"line {i}\\n")
        sys.stdout.write("partial")
    """)
    tid = trial_id(kleio.ok("python", name).stderr)
    assert kleio.ok("tail", "-n", "2", tid).stdout == "line 4\npartial"


@pytest.mark.slow
@pytest.mark.parametrize(("count", "every"), [(400, 1), (3000, 500)])
def test_tail_follow_matches_cat_line_for_line(kleio, script, count, every):
    """Started mid-run (every=1: a slow trial, so lines arrive live one by one; every=500:
    a burst), `tail -f -n all` prints exactly what `cat` prints, and exits with the trial."""
    name = script(NOISY.format(count=count, every=every))
    run = kleio.popen("python", name)
    tid = _running_id(kleio)
    follow = kleio("tail", "-f", "-n", "all", tid, timeout=120)
    run.communicate(timeout=60)
    assert follow.returncode == 0, follow.stderr
    cat_out = kleio.ok("cat", tid, "--stream", "stdout").stdout
    cat_err = kleio.ok("cat", tid, "--stream", "stderr").stdout
    assert follow.stdout == cat_out
    assert follow.stderr == cat_err
    assert follow.stdout.splitlines()[-1] == "end"
    assert len(follow.stdout.splitlines()) == count + 1


def test_tail_follow_exits_at_once_for_a_finished_trial(kleio, script):
    name = script(NOISY.format(count=3, every=1000))
    tid = trial_id(kleio.ok("python", name).stderr)
    started = time.monotonic()
    assert kleio.ok("tail", "-f", tid).stdout.endswith("out 2\nend\n")
    assert time.monotonic() - started < 30  # one command on a busy machine; no wait for more


def test_tail_follow_statistics_prints_rows(kleio, script):
    name = script("""
        import time
        from kleio_client import kleio_logger
        for step in range(20):
            kleio_logger.log_statistic(step=step, loss=1.0 / (step + 1))
            time.sleep(0.02)
        kleio_logger.log_statistic(step=20, loss=0.0, acc=0.5)
    """)
    run = kleio.popen("python", name)
    tid = _running_id(kleio)
    follow = kleio.ok("tail", "-f", "--stats", "-n", "all", tid, timeout=60)
    run.communicate(timeout=60)
    lines = follow.stdout.splitlines()
    assert lines[0].split() == ["step", "loss"]
    assert [line.split()[0] for line in lines[1:21]] == [str(s) for s in range(20)]
    assert lines[21].split() == ["step", "loss", "acc"]  # a new key: the header again
    assert lines[22].split() == ["20", "0", "0.5"]
    # Rows are aligned: every column ends at the same place.
    assert len({len(line) for line in lines[1:21]}) == 1


def test_output_is_published_live_with_positions_that_continue_the_journal(kleio, script, isolated):
    """The daemon publishes each committed chunk once, numbered, at its journal position."""
    import zmq

    from kleio_client import protocol
    from kleio_client.control import ControlClient

    name = script("""
        import select, sys, time
        from kleio_client import kleio_logger
        while not select.select([sys.stdin], [], [], 0.05)[0]:  # until the test hears them
            kleio_logger.log_statistic(probe=1)
        sys.stdin.readline()
        for i in range(200):
            print(f"live {i}", flush=True)
            time.sleep(0.002)
    """)
    run = kleio.popen("python", name, stdin=subprocess.PIPE)
    tid = _running_id(kleio)
    output_topic = protocol.live_topic(tid, protocol.OUTPUT)
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, protocol.live_topic(tid, ""))  # its output and statistics
    endpoint = protocol.Endpoints.in_directory(str(isolated.kleio_runtime)).publish
    sub.connect(endpoint)
    # A statistic received: the subscription has reached the daemon (the trial prints
    # nothing until then).
    while True:
        assert sub.poll(60_000), "no live statistic: the subscription never took"
        topic, _ = sub.recv_multipart()
        assert topic != output_topic, "output before the test let the trial print"
        if topic == protocol.live_topic(tid, protocol.STATISTIC):
            break
    run.stdin.write(b"go\n")
    run.stdin.flush()
    messages = []
    text = b""
    while b"live 199\n" not in text:
        assert sub.poll(60_000), f"no live chunk; got {text!r}"
        topic, payload = sub.recv_multipart()
        if topic != output_topic:
            continue  # the probes' statistics
        message = protocol.unpack(payload, limit=None)
        messages.append(message)
        text += b"".join(p[1]["data"] for p in msgpack.unpackb(message["records"]))
    sub.close(0)
    context.term()
    run.stdin.close()
    run.wait(timeout=60)
    assert text == b"".join(f"live {i}\n".encode() for i in range(200))
    numbers = [m["n"] for m in messages]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    positions = [m["position"] for m in messages]
    assert positions == sorted(positions)
    control = ControlClient(protocol.Endpoints.in_directory(str(isolated.kleio_runtime)).control)
    stored = control.call("tail", id=tid, kind=protocol.OUTPUT)["records"]
    control.close()
    assert set(positions) <= {r["position"] for r in stored}


def test_tail_of_an_unknown_trial_is_one_clear_line(kleio):
    done = kleio("tail", "-f", "abc123")
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0
    assert "no trial" in done.stderr


def test_tail_follow_survives_sigint_cleanly(kleio, script):
    name = script("""
        import time
        print("up", flush=True)
        time.sleep(300)  # until the test interrupts it
    """)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "up")
    tid = _running_id(kleio)
    follow = kleio.popen("tail", "-f", tid)
    wait_for_line(follow.stdout, "up")
    follow.send_signal(signal.SIGINT)
    _, err = follow.communicate(timeout=60)
    assert follow.returncode == 130
    assert b"Traceback" not in err
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
