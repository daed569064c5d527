"""Several processes of one trial (torchrun ranks, srun tasks): every record says its rank."""

from __future__ import annotations

import json

from tests.conftest import trial_id


def test_processes_with_a_rank_log_into_one_trial_each_record_tagged(kleio, script):
    """Two plain processes with RANK set (as torchrun starts them), and one with
    SLURM_PROCID, log into the trial that started them."""
    script("""
        import sys
        from kleio_client import kleio_logger
        for step in range(50):
            kleio_logger.log_statistic(step=step)
        kleio_logger.log_statistic(step=99, rank=7)  # the script's own rank key stays
    """, name="worker.py")
    name = script("""
        import os, subprocess, sys
        workers = [subprocess.Popen([sys.executable, "worker.py"], env={**os.environ, **extra})
                   for extra in ({"RANK": "0"}, {"RANK": "1"}, {"SLURM_PROCID": "2"})]
        assert all(w.wait() == 0 for w in workers)
    """)
    tid = trial_id(kleio.ok("python", name).stderr)
    for rank in (0, 1, 2):
        rows = json.loads(kleio.ok("stats", tid, "--where", f"rank={rank}", "--json").stdout)
        assert [r["step"] for r in rows] == list(range(50))
    assert [r["step"] for r in kleio.json("stats", tid) if r["rank"] == 7] == [99, 99, 99]
