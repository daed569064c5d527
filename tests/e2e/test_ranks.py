"""Several processes of one trial (torchrun ranks, srun tasks): every record says its rank."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.conftest import trial_id


def test_processes_with_a_rank_log_into_one_trial_each_record_tagged(kleio, script):
    """Two plain processes with RANK set (as torchrun starts them), and one with
    SLURM_PROCID, log into the trial that started them."""
    script(
        """
        import sys
        from kleio_client import kleio_logger
        for step in range(50):
            kleio_logger.log_statistic(step=step)
        kleio_logger.log_statistic(step=99, rank=7)  # the script's own rank key stays
    """,
        name="worker.py",
    )
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


# torchrun as far as Kleio sees it: starts the script once per rank with RANK,
# LOCAL_RANK and WORLD_SIZE set, and fails when a rank fails.
TORCHRUN = """#!{python}
import os, subprocess, sys
args, ranks = sys.argv[1:], 1
while args[0].startswith("-"):
    option = args.pop(0)
    if option.startswith("--nproc_per_node"):
        ranks = int(option.split("=")[1]) if "=" in option else int(args.pop(0))
workers = [subprocess.Popen([sys.executable, *args], env={{**os.environ, "RANK": str(rank),
           "LOCAL_RANK": str(rank), "WORLD_SIZE": str(ranks)}}) for rank in range(ranks)]
sys.exit(max(w.wait() for w in workers))
"""

RANK_TRAIN = """
import argparse, os, sys
from kleio_client import kleio_logger
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
lr = parser.parse_args().lr
for step in range(30):
    kleio_logger.log_statistic(step=step, lr=lr)
sys.stdout.write(f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} done\\n")
"""


def _torchrun_on_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "torchrun"
    launcher.write_text(TORCHRUN.format(python=sys.executable))
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_kleio_torchrun_is_one_trial_whose_records_say_their_rank(
    kleio, script, tmp_path, monkeypatch
):
    _torchrun_on_path(tmp_path, monkeypatch)
    name = script(RANK_TRAIN)
    done = kleio.ok("torchrun", "--nproc_per_node", "2", name, "--lr", "0.1")
    assert sorted(done.stdout.splitlines()) == ["rank 0 of 2 done", "rank 1 of 2 done"]
    tid = trial_id(done.stderr)
    for rank in (0, 1):
        rows = json.loads(kleio.ok("stats", tid, "--where", f"rank={rank}", "--json").stdout)
        assert [r["step"] for r in rows] == list(range(30))
    info = kleio.json("info", tid)
    assert info["configuration"]["options"] == {"--lr": 0.1}
    assert info["configuration"]["launcher"] == ["torch.distributed.run", "--nproc_per_node", "2"]

    branched = kleio.ok("branch", tid, "--lr", "0.01")
    child = trial_id(branched.stderr)
    rows = kleio.json("stats", child)
    assert len(rows) == 60 and {r["lr"] for r in rows} == {0.01}
    assert {r["rank"] for r in rows} == {0, 1}


GLOO_TRAIN = """
import torch, torch.distributed as dist
from kleio_client import kleio_logger
dist.init_process_group("gloo")
for step in range(5):
    total = torch.tensor([float(dist.get_rank() + step)])
    dist.all_reduce(total)
    kleio_logger.log_statistic(step=step, total=total.item())
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_a_real_two_rank_torchrun_on_cpu(kleio, script):
    """Where torch is installed: the real launcher and the gloo backend."""
    pytest.importorskip("torch")
    done = kleio.ok(
        "torchrun", "--standalone", "--nproc_per_node", "2", script(GLOO_TRAIN), timeout=180
    )
    tid = trial_id(done.stderr)
    for rank in (0, 1):
        rows = json.loads(kleio.ok("stats", tid, "--where", f"rank={rank}", "--json").stdout)
        assert [(r["step"], r["total"]) for r in rows] == [(s, 1.0 + 2 * s) for s in range(5)]


DATALOADER = """
import sys
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from kleio_client import kleio_logger

class Items(Dataset):
    def __len__(self):
        return 400

    def __getitem__(self, index):
        kleio_logger.log_statistic(item=index, worker=get_worker_info().id)
        return torch.tensor([index])

if __name__ == "__main__":
    loader = DataLoader(Items(), batch_size=8, num_workers=2, multiprocessing_context=sys.argv[1])
    for batch in loader:
        kleio_logger.log_statistic(batch=int(batch[0]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_real_dataloader_whose_workers_log(kleio, script, method):
    """Where torch is installed: DataLoader workers log into the trial, each record once."""
    pytest.importorskip("torch")
    done = kleio.ok("python", script(DATALOADER), method, timeout=180)
    rows = kleio.json("stats", trial_id(done.stderr))
    assert sorted(r["item"] for r in rows if "item" in r) == list(range(400))
    assert {r["worker"] for r in rows if "item" in r} == {0, 1}
    assert [r["batch"] for r in rows if "batch" in r] == list(range(0, 400, 8))
