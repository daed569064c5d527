"""No daemon for a while: the training loop never waits, memory stays bounded, and every
record reaches the journal once a daemon is back (or after the script has ended)."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import signal_daemon, trial_id, wait_for_line

FLOOD = """
import sys, time
from kleio_client import kleio_logger
print("ready", flush=True)
sys.stdin.readline()
worst = 0.0
for block in range({blocks}):
    started = time.perf_counter()
    for i in range(1000):
        kleio_logger.log_statistic(step=block * 1000 + i, loss=0.5)
    worst = max(worst, time.perf_counter() - started)
    time.sleep({pause})
print("worst block", worst, flush=True)
"""


def _kill_daemon(isolated) -> None:
    signal_daemon(isolated.kleio_runtime)


def _spills(isolated) -> list[str]:
    directory = isolated.kleio_runtime / "spill"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.slow
def test_no_daemon_for_seconds_spills_to_disk_and_loses_nothing(
    kleio, script, isolated, monkeypatch
):
    monkeypatch.setenv("KLEIO_BUFFER_BYTES", str(256 * 1024))
    name = script(FLOOD.format(blocks=300, pause=0.01))
    run = kleio.popen("python", name, stdin=subprocess.PIPE)
    wait_for_line(run.stdout, "ready")
    _kill_daemon(isolated)
    run.stdin.write(b"go\n")
    run.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(n.endswith(".frames") for n in _spills(isolated)):
        assert time.monotonic() < deadline, "the producer never spilled"
        time.sleep(0.05)
    time.sleep(1.0)  # more records go to the spill while no daemon runs
    kleio.ok("daemon", "start")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    worst = float(out.decode().split("worst block")[1])
    assert worst < 0.5  # 1000 calls; a stall on the missing daemon would take seconds
    tid = trial_id(err.decode())
    steps = [r["step"] for r in kleio.json("stats", tid)]
    assert steps == list(range(300_000))
    assert not [n for n in _spills(isolated) if n.endswith(".frames")]  # taken in, removed


@pytest.mark.slow
def test_a_script_that_ends_with_no_daemon_leaves_a_spill_the_next_daemon_takes(
    kleio, script, isolated, monkeypatch
):
    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "1")
    name = script(FLOOD.format(blocks=50, pause=0))
    run = kleio.popen("python", name, stdin=subprocess.PIPE)
    wait_for_line(run.stdout, "ready")
    # Stopped, not killed: the trial's supervisor starts no daemon 3 s later, which a busy
    # machine's 50 blocks and 1 s flush could outlast (then the records are acknowledged).
    kleio.ok("daemon", "stop")
    _, err = run.communicate(b"go\n", timeout=60)
    text = err.decode()
    assert "50000 records were not acknowledged within 1 s; they are kept in" in text
    assert "which kleiod stores when it runs" in text
    assert any(n.endswith(".frames") for n in _spills(isolated))
    kleio.ok("daemon", "start")
    tid = trial_id(text)
    deadline = time.monotonic() + 60
    while len(steps := [r["step"] for r in kleio.json("stats", tid)]) < 50_000:
        assert time.monotonic() < deadline, f"the spill was not taken in: {len(steps)} records"
        time.sleep(0.2)
    assert steps == list(range(50_000))


TIGHT_LOOP = """
from kleio_client import kleio_logger
from kleio_client.channel import QUEUE_RECORDS
kleio_logger.log_statistic(step=-1)
queue = kleio_logger._channel._pending
longest = 0
for block in range(500):
    for i in range(1000):
        kleio_logger.log_statistic(step=block * 1000 + i, loss=0.5, acc=0.9)
    longest = max(longest, len(queue))
print("longest", longest, QUEUE_RECORDS, flush=True)
"""


@pytest.mark.slow
def test_a_tight_loop_keeps_a_bounded_queue_in_the_script(kleio, script):
    """Each time the I/O thread releases the GIL (to send, to write a spill), a busy loop
    keeps it for the switch interval: without the logging thread handing it over, the
    records queued in the script's memory grew to hundreds of thousands."""
    name = script(TIGHT_LOOP)
    done = kleio.ok("python", name)
    longest, bound = (int(x) for x in done.stdout.split("longest")[1].split())
    assert longest <= 2 * bound
    steps = [r["step"] for r in kleio.json("stats", trial_id(done.stderr))]
    assert steps == list(range(-1, 500_000))


STALLED_IO_THREAD = """
import threading, time
from kleio_client import kleio_logger
from kleio_client.link import Link
kleio_logger.log_statistic(step=-1)
kleio_logger.flush()
turn = Link.drain
stalls = [3.0]
in_stall = threading.Event()

def stalled_turn(self):  # the I/O thread blocked, as on a stalled disk
    if stalls:
        in_stall.set()
        time.sleep(stalls.pop())
    turn(self)

Link.drain = stalled_turn
assert in_stall.wait(30), "the I/O thread never came to its stall"
started = time.perf_counter()
for i in range(100_000):
    kleio_logger.log_statistic(step=i)
print("loop", time.perf_counter() - started, flush=True)
"""


@pytest.mark.slow
def test_a_stalled_io_thread_costs_the_loop_one_short_wait(kleio, script):
    """The loop hands the I/O thread the GIL while it is behind, but never waits on a
    thread that takes nothing: one wait of 50 ms, then the records queue meanwhile."""
    done = kleio.ok("python", script(STALLED_IO_THREAD))
    assert float(done.stdout.split("loop")[1]) < 1.5  # the stall lasts 3 s (0.3 s when busy)
    steps = [r["step"] for r in kleio.json("stats", trial_id(done.stderr))]
    assert steps == list(range(-1, 100_000))


def test_a_spill_file_gone_while_the_daemon_looks_never_stops_it(kleio, isolated, monkeypatch):
    """A producer removes its spill file once acknowledged, perhaps while the daemon's
    sweep lists the directory: a name listed but gone is skipped (here a dangling link,
    which a sweep lists and cannot open)."""
    import psutil

    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "1")  # a sweep every 0.25 s
    kleio.ok("daemon", "start")
    directory = isolated.kleio_runtime / "spill"
    directory.mkdir(exist_ok=True)
    (directory / "0123456789abcdef-1-000000.frames").symlink_to(directory / "gone")
    # A sweep that went past the spills: it expires the lease of a trial whose kleio,
    # supervisor and process were killed after the link was made.
    run = kleio.popen("python", "-c", "import time; print('ready', flush=True); time.sleep(300)")
    wait_for_line(run.stdout, "ready")
    cli = psutil.Process(run.pid)
    for member in [cli, *cli.children(recursive=True)]:
        member.kill()
    _, err = run.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while kleio.json("info", trial_id(err.decode()))["status"] != "lost":
        assert time.monotonic() < deadline, "no sweep expired the lease"
        time.sleep(0.1)
    assert kleio.json("daemon", "status")["pid"]
    log = (isolated.kleio_runtime / "kleiod.log").read_text()
    assert "Traceback" not in log
