"""Every record logged before an exit is in the journal when kleio returns."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import trial_id, wait_for_line

COUNT = 100_000


@pytest.mark.parametrize("ending", ["normal", "exception", "sys.exit(2)", "sigterm"])
def test_records_logged_in_a_burst_are_all_journaled_at_exit(kleio, script, ending):
    tail = {
        "normal": "",
        "exception": "raise ValueError('boom')",
        "sys.exit(2)": "sys.exit(2)",
        "sigterm": "print('ready', flush=True); time.sleep(60)",
    }[ending]
    name = script(f"""
        import sys, time
        from kleio_client import kleio_logger
        for i in range({COUNT}):
            kleio_logger.log_statistic(i=i, loss=i * 0.5)
        {tail}
    """)
    proc = kleio.popen("python", name)
    if ending == "sigterm":
        wait_for_line(proc.stdout, "ready", timeout=60)
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    tid = trial_id(err.decode())
    records = kleio.json("stats", tid)
    assert len(records) == COUNT
    assert [r["i"] for r in records] == list(range(COUNT))


@pytest.mark.slow
def test_a_burst_of_a_million_records_is_journaled_once(kleio, script, isolated):
    """1,000,000 records as fast as the loop goes: every one stored, none twice (checked
    in the journal file itself: each producer's seqs 1..N exactly once)."""
    import sqlite3

    import msgpack

    name = script("""
        from kleio_client import kleio_logger
        for i in range(1_000_000):
            kleio_logger.log_statistic(i=i)
    """)
    done = kleio.ok("python", name, timeout=120)
    tid = trial_id(done.stderr)
    with sqlite3.connect(isolated.journal) as db:
        rows = db.execute(
            "SELECT seq, count, body FROM chunks WHERE trial_id = ? AND "
            "kind = 'statistic' ORDER BY chunk",
            (tid,),
        ).fetchall()
    seqs = [seq + k for seq, count, _ in rows for k in range(count)]
    assert sorted(seqs) == list(range(1, 1_000_001))
    values = [pair[1]["i"] for _, _, body in rows for pair in msgpack.unpackb(body)]
    assert values == list(range(1_000_000))
