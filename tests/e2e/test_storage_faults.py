"""The journal cannot be written for a while (locked by another program, disk full): the
daemon keeps every record, says so in `kleio daemon status` and in the trial's output, and
writes them all once the storage is back."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import trial_id, wait_for_line

SLOW = """
import time
from kleio_client import kleio_logger
print("ready", flush=True)
for step in range({steps}):
    kleio_logger.log_statistic(step=step, note="{note}")
    time.sleep({pause})
print("done", flush=True)
"""

# Until the test creates the file `end`: the trial lives (and its supervisor heartbeats,
# which bring the news) until the test has heard all it waits for.
HOLD = """
import os
deadline = time.monotonic() + 300
while not os.path.exists("end"):
    assert time.monotonic() < deadline, "the test never released the trial"
    time.sleep(0.01)
"""

CANNOT_WRITE = "kleio: kleiod cannot write the journal now"
WRITABLE_AGAIN = "kleio: the journal is writable again; no record was lost"


def _wait_for_status(kleio, check, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = kleio.json("daemon", "status")
        if check(status):
            return status
        assert time.monotonic() < deadline, f"status never matched: {status}"
        time.sleep(0.1)


def _assert_told_in_output(kleio, tid: str) -> None:
    output = kleio.ok("cat", tid, "--stream", "stderr").stdout
    assert CANNOT_WRITE in output
    assert WRITABLE_AGAIN in output


@pytest.mark.slow
def test_a_journal_locked_by_another_program_loses_nothing(
    kleio, script, isolated, workdir, monkeypatch
):
    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "2")  # heartbeats (and the news) every 0.5 s
    name = script(SLOW.format(steps=3000, note="x", pause=0.001) + HOLD)
    run = kleio.popen("python", name)
    wait_for_line(run.stdout, "ready")
    other = sqlite3.connect(isolated.journal, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        status = _wait_for_status(kleio, lambda s: s["database_error"])
        assert "locked" in status["database_error"]
        told = wait_for_line(run.stderr, CANNOT_WRITE)  # a heartbeat brought the news
    finally:
        other.execute("COMMIT")
        other.close()
    told += wait_for_line(run.stderr, WRITABLE_AGAIN)
    (workdir / "end").touch()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    err = told.encode() + err
    assert CANNOT_WRITE.encode() in err  # on the terminal too
    tid = trial_id(err.decode())
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(3000))
    assert kleio.json("daemon", "status")["database_error"] is None
    _assert_told_in_output(kleio, tid)


@pytest.fixture
def small_disk(isolated):
    """The data directory (the journal) on a 16 MiB filesystem of its own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    isolated.data.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(isolated.data)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield isolated.data
    subprocess.run(["umount", "-l", str(isolated.data)], capture_output=True)


def test_a_full_disk_keeps_the_records_until_there_is_room(kleio, script, small_disk, monkeypatch):
    monkeypatch.setenv("KLEIO_LEASE_SECONDS", "2")
    kleio.ok("daemon", "start")  # the journal exists on the small disk
    filler = Path(small_disk) / "filler"
    free = shutil.disk_usage(small_disk).free
    with open(filler, "wb") as handle:
        handle.write(b"\0" * (free - 64 * 1024))
    name = script(
        SLOW.format(steps=20_000, note="n" * 100, pause=0) + "import sys\nsys.stdin.readline()\n"
    )
    run = kleio.popen("python", name, stdin=subprocess.PIPE)
    status = _wait_for_status(kleio, lambda s: s["database_error"])
    assert "full" in status["database_error"]
    told = wait_for_line(run.stderr, CANNOT_WRITE)  # heartbeats bring the news to the trial
    filler.unlink()
    _wait_for_status(kleio, lambda s: s["database_error"] is None)
    told += wait_for_line(run.stderr, WRITABLE_AGAIN)
    out, err = run.communicate(b"end\n", timeout=60)
    assert run.returncode == 0, err
    err = told.encode() + err
    assert CANNOT_WRITE.encode() in err
    tid = trial_id(err.decode())
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(20_000))
    _assert_told_in_output(kleio, tid)
