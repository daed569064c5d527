"""Kleio's benchmarks: ``python -m tests.benchmarks.run [--runs N] [--records N]``.

Each figure is the median of several runs, printed beside a baseline
measured in the same run on the same machine.  Runs against a real daemon in
a temporary runtime directory; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

from tests.benchmarks import journal, peers, resources, ui
from tests.benchmarks.harness import Figure, isolated_env, kleio_argv, table, timed

LOGGING_SCRIPT = """
import sys, time
from kleio_client import kleio_logger
n = int(sys.argv[1])
log = kleio_logger.log_statistic
start = time.perf_counter()
for i in range(n):
    log(epoch=i, loss=0.5, acc=0.9)
loop = time.perf_counter() - start
start = time.perf_counter()
kleio_logger.flush()
print(f"{loop / n * 1e6} {time.perf_counter() - start}")
"""

RAW_PUSH_SCRIPT = """
import subprocess, sys, time
import msgpack, zmq
n, endpoint = int(sys.argv[1]), sys.argv[2]
drain = (
    "import sys, zmq; s = zmq.Context().socket(zmq.PULL); s.bind(sys.argv[1]); "
    "print('ready', flush=True)\\nwhile s.recv() != b'end': pass"
)
puller = subprocess.Popen([sys.executable, "-c", drain, endpoint], stdout=subprocess.PIPE)
puller.stdout.readline()
push = zmq.Context().socket(zmq.PUSH)
push.connect(endpoint)
time.sleep(0.1)
packb, send, NOBLOCK = msgpack.packb, push.send, zmq.NOBLOCK
dropped = 0
start = time.perf_counter()
for i in range(n):
    try:
        send(packb({"epoch": i, "loss": 0.5, "acc": 0.9}), NOBLOCK)
    except zmq.Again:
        dropped += 1
loop = time.perf_counter() - start
push.send(b"end")
puller.wait()
print(f"{loop / n * 1e6} {dropped}")
"""


def bench_logging(root: Path, env: dict[str, str], runs: int, records: int) -> list[Figure]:
    script = root / "log.py"
    script.write_text(textwrap.dedent(LOGGING_SCRIPT))
    raw = root / "raw.py"
    raw.write_text(textwrap.dedent(RAW_PUSH_SCRIPT))
    per_call, flush, raw_call, raw_dropped = [], [], [], []
    for _ in range(runs):
        done = subprocess.run(
            kleio_argv("python", str(script), str(records), uuid.uuid4().hex),
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        )
        call, wait = (float(x) for x in done.stdout.split())
        per_call.append(call)
        flush.append(wait)
        endpoint = f"ipc://{root / 'run' / 'raw.sock'}"
        done = subprocess.run(
            [sys.executable, str(raw), str(records), endpoint],
            capture_output=True,
            text=True,
            check=True,
        )
        call, dropped = (float(x) for x in done.stdout.split())
        raw_call.append(call)
        raw_dropped.append(100 * dropped / records)
    return [
        Figure("log_statistic, 3 scalars", "us", per_call, "<= 1.0 us, <= 1x raw", raw_call),
        Figure(f"flush of {records:,} records at exit", "s", flush, "<= 3 s"),
        Figure("records dropped by the raw PUSH baseline", "%", raw_dropped, "kleio: 0"),
    ]


def bench_start(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    """In a repository of 1,000 files (one edited) with 300 more distributions installed."""
    repo, site = _big_repository(root, 1000, 300)
    big = {**env, "PYTHONPATH": str(site)}
    subprocess.run(kleio_argv("daemon", "start"), env=env, capture_output=True, check=True)
    kleio_runs = timed(
        lambda: subprocess.run(
            ["kleio", "python", "-c", "pass", uuid.uuid4().hex],
            env=big,
            capture_output=True,
            check=True,
            cwd=repo,
        ),
        runs,
    )
    python_runs = timed(
        lambda: subprocess.run(
            [sys.executable, "-c", "pass"], env=big, capture_output=True, check=True, cwd=repo
        ),
        runs,
    )
    help_runs = timed(
        lambda: subprocess.run(["kleio", "--help"], env=env, capture_output=True, check=True), runs
    )
    return [
        Figure(
            "kleio python -c pass (new trial)", "s", kleio_runs, "<= python + 0.35 s", python_runs
        ),
        Figure("kleio --help", "s", help_runs, "<= 0.25 s"),
    ]


CAPTURE_SCRIPT = """
import os, sys, time
start = time.perf_counter()
from kleio_cli.capture import capture
captured = capture(["python", "train.py", "--lr", "0.1"], os.getcwd())
elapsed = time.perf_counter() - start
assert len(captured["environment"]["packages"]) >= 300, len(captured["environment"]["packages"])
print(elapsed)
"""


def _big_repository(root: Path, files: int, distributions: int) -> tuple[Path, Path]:
    """A git repository of ``files`` files (one edited) and a site dir of fake distributions."""
    repo, site = root / "bigrepo", root / "site"
    if repo.exists():
        return repo, site
    for index in range(files):
        package = repo / f"pkg{index // 100}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"module{index}.py").write_text(f"VALUE = {index}\n" * 20)
    (repo / "train.py").write_text("pass\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "."], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "files"], cwd=repo, check=True)
    (repo / "pkg0" / "module0.py").write_text("VALUE = -1\n")
    for index in range(distributions):
        info = site / f"dist{index}-1.{index}.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Name: dist{index}\nVersion: 1.{index}.0\n")
    return repo, site


def bench_capture(root: Path, runs: int) -> list[Figure]:
    repo, site = _big_repository(root, 1000, 300)
    script = root / "capture.py"
    script.write_text(textwrap.dedent(CAPTURE_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(site)}
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(done.stdout))
    return [Figure("capture: 1,000 files, 300+ distributions", "s", times, "<= 0.3 s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure the peers that are installed (not part of CI)",
    )
    parser.add_argument("--only", help="only the benchmarks whose function name has this")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kb", dir="/tmp"))
    env = isolated_env(root)
    try:
        benches = [
            lambda: bench_logging(root, env, args.runs, args.records),
            lambda: resources.bench_latency(root, env),
            lambda: resources.bench_flood(root, env, args.runs, args.records),
            lambda: bench_start(root, env, args.runs),
            lambda: bench_capture(root, args.runs),
            lambda: journal.bench_ls(root, env, args.runs),
            lambda: journal.bench_where(root, env, args.runs),
            lambda: journal.bench_stats(root, env, args.runs),
            lambda: journal.bench_branch(root, env, args.runs),
            lambda: ui.bench_ui(root, env, args.runs),
        ]
        names = [
            "logging",
            "latency",
            "flood",
            "start",
            "capture",
            "ls",
            "where",
            "stats",
            "branch",
            "ui",
        ]
        figures = []
        for name, bench in zip(names, benches, strict=True):
            if args.only is None or args.only in name:
                done = bench()
                figures += done
                print(table(done), file=sys.stderr, flush=True)  # progress, as it comes
        if args.peers:
            logged = [f for f in figures if f.name.startswith("log_statistic")]
            figures += peers.bench_peers(root, args.runs, logged[0].runs if logged else [])
    except BaseException:
        print(
            f"a benchmark failed: its daemon's log is kept in {root / 'run' / 'kleio'}",
            file=sys.stderr,
        )
        subprocess.run(kleio_argv("daemon", "stop"), env=env, capture_output=True)
        raise
    subprocess.run(kleio_argv("daemon", "stop"), env=env, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps([f.__dict__ for f in figures], indent=2))
    else:
        print(table(figures))


if __name__ == "__main__":
    main()
