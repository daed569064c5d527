"""The peers, side by side (``--peers``; not part of CI): per call of logging three
scalars in a tight loop, each in a fresh process, when the peer is installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.benchmarks.harness import Figure

CALLS = 20_000

# Each snippet sets up the peer in the current directory, defines log(i), and is timed.
PEERS: dict[str, tuple[str, str]] = {
    "sacred (in memory, written every 10 s)": (
        "sacred",
        """
        from sacred import Experiment
        ex = Experiment("bench", save_git_info=False)
        def log(i, run=None):
            run.log_scalar("loss", 0.5, i); run.log_scalar("acc", 0.9, i)
            run.log_scalar("epoch", i, i)
        @ex.main
        def main(_run):
            timed(lambda i: log(i, _run))
        ex.run()
    """,
    ),
    "wandb (offline)": (
        "wandb",
        """
        import os
        os.environ["WANDB_MODE"] = "offline"; os.environ["WANDB_SILENT"] = "true"
        import wandb
        run = wandb.init(project="bench", dir=".")
        timed(lambda i: run.log({"epoch": i, "loss": 0.5, "acc": 0.9}))
        run.finish()
    """,
    ),
    "tensorboardX": (
        "tensorboardX",
        """
        from tensorboardX import SummaryWriter
        writer = SummaryWriter("tb")
        def log(i):
            writer.add_scalar("loss", 0.5, i); writer.add_scalar("acc", 0.9, i)
            writer.add_scalar("epoch", i, i)
        timed(log)
        writer.close()
    """,
    ),
    "aim": (
        "aim",
        """
        from aim import Run
        run = Run(repo=".")
        def log(i):
            run.track(0.5, name="loss", step=i); run.track(0.9, name="acc", step=i)
            run.track(i, name="epoch", step=i)
        timed(log)
    """,
    ),
    "mlflow (file store)": (
        "mlflow",
        """
        import mlflow
        mlflow.set_tracking_uri("file:./mlruns")
        with mlflow.start_run():
            timed(lambda i: mlflow.log_metrics({"epoch": i, "loss": 0.5, "acc": 0.9}, step=i))
    """,
    ),
    "mlflow (sqlite)": (
        "mlflow",
        """
        import mlflow
        mlflow.set_tracking_uri("sqlite:///mlflow.db")
        with mlflow.start_run():
            timed(lambda i: mlflow.log_metrics({"epoch": i, "loss": 0.5, "acc": 0.9}, step=i))
    """,
    ),
}

HARNESS = f"""
import time
def timed(log):
    start = time.perf_counter()
    for i in range({CALLS}):
        log(i)
    print("per-call", (time.perf_counter() - start) / {CALLS} * 1e6)
"""


def bench_peers(root: Path, runs: int, kleio_call: list[float]) -> list[Figure]:
    figures = []
    for name, (module, snippet) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"peers: {name} is not installed; skipped", file=sys.stderr)
            continue
        work = root / f"peer-{module}"
        work.mkdir(exist_ok=True)
        script = work / "peer.py"
        script.write_text(HARNESS + textwrap.dedent(snippet))
        times = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=600
            )
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("per-call")]
            if done.returncode != 0 or not line:
                print(f"peers: {name} failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
                break
            times.append(float(line[0].split()[1]))
        if times:
            figures.append(
                Figure(
                    f"peer: {name}, 3 scalars", "us", times, "kleio's is the baseline", kleio_call
                )
            )
    return figures
