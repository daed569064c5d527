"""Reading the journal at scale: `kleio ls` over 10,000 trials (all of them, and those whose
options match, through the CLI and the Python API), `kleio stats` of a trial of 1,000,000
records (sorted by a key, as a table and as JSON), the same through the Python API, and
branch creation at 1,000 and 1,000,000 parent records."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from contextlib import closing
from functools import partial
from pathlib import Path

from tests.benchmarks import resources
from tests.benchmarks.harness import Figure, kleio_argv, timed

GENERATE = """
import random, sys, time
from kleio_client import kleio_logger
count = int(sys.argv[1])
if "--read" in sys.argv and sys.argv[sys.argv.index("--read") + 1] == "1":
    start = time.perf_counter()
    records = kleio_logger.statistics()
    print(f"read {len(records)} {time.perf_counter() - start}")
    sys.exit(0)
if "--read" in sys.argv and sys.argv[sys.argv.index("--read") + 1] == "2":
    sys.exit(0)
random.seed(1)
for step in range(count):
    kleio_logger.log_statistic(step=step, loss=random.random(), acc=0.5)
"""

JOURNAL_READ = """
import sys, time
from kleio_client.journal import Journal
with Journal() as journal:
    trial = journal.trial(sys.argv[1])
    start = time.perf_counter()
    records = trial.statistics(sort="loss")
    print(len(records), time.perf_counter() - start)
"""

MAKE_TRIALS = """
import sys, time
from pathlib import Path
from kleiod.storage.sqlite import SQLiteStorage
from kleiod.storage.base import Claim, TrialSpec
storage = SQLiteStorage(Path(sys.argv[1]))
now = time.time()
for index in range(int(sys.argv[2])):
    spec = TrialSpec(id=f"{index:032x}", command=["python", "train.py", "--lr", str(index)],
                     identity={}, cwd="/tmp", user="bench")
    storage.reserve(spec, Claim("host", 1, 60))
storage.close()
"""


# 10,000 trials as `kleio python train.py --lr LR --batch-size N` leaves them, each with
# the capture of this interpreter's environment and 300 more distributions (about 16 KB,
# as a project's environment is), its options varied; a tenth resumed once.
MAKE_CONFIGURED_TRIALS = """
import copy, os, random, sys, time
from pathlib import Path
from kleio_cli.capture import capture
from kleiod.storage.sqlite import SQLiteStorage
from kleiod.storage.base import Claim, ExecutionEnd, TrialSpec
storage = SQLiteStorage(Path(sys.argv[1]))
base = capture(["python", "train.py", "--lr", "0.1"], os.getcwd())
base["environment"]["packages"].update(
    {f"dist{i}": {"version": f"1.{i}.0"} for i in range(300)})
rng = random.Random(1)
for index in range(int(sys.argv[2])):
    lr, batch = rng.random(), rng.choice([8, 16, 32])
    argv = ["python", "train.py", "--lr", str(lr), "--batch-size", str(batch)]
    captured = copy.deepcopy(base)
    captured["configuration"].update(command=argv, options={"--lr": lr, "--batch-size": batch})
    spec = TrialSpec(id=f"{index:032x}", command=argv, identity={}, cwd="/tmp", user="bench")
    for execution in range(1, 3 if index % 10 == 0 else 2):
        storage.reserve(spec, Claim("host", 1, 60), captured)
        storage.end_execution(ExecutionEnd(spec.id, execution, "completed" if execution > 1
                                           or index % 10 else "interrupted", 0, []))
storage.close()
"""

# In one process: Journal.trials(lr__gt=0.5) and, as its baseline, the plain listing; the
# ids found the way `kleio ls --where` found them before (an `info` per trial) once.
JOURNAL_WHERE = """
import json, sys, time
from kleio_client.journal import Journal, options
from kleio_client.protocol import Condition
runs, before = int(sys.argv[1]), sys.argv[2] == "1"
figures = {"trials": [], "ls": [], "found": None, "before": None, "found_before": None}
with Journal() as journal:
    for _ in range(runs):
        start = time.perf_counter()
        found = journal.trials(lr__gt=0.5)
        figures["trials"].append(time.perf_counter() - start)
        start = time.perf_counter()
        journal.call("ls")
        figures["ls"].append(time.perf_counter() - start)
    figures["found"] = sorted(t.id for t in found)
    if before:
        start = time.perf_counter()
        wanted = Condition("lr", "gt", 0.5)
        kept = [t["id"] for t in journal.call("ls") if wanted.holds(options(
            journal.call("info", id=t["id"]).get("configuration") or {}))]
        figures["before"] = time.perf_counter() - start
        figures["found_before"] = sorted(kept)
print(json.dumps(figures))
"""


def _trial(root: Path, env: dict[str, str], count: int) -> str:
    script = root / "generate.py"
    script.write_text(textwrap.dedent(GENERATE))
    done = subprocess.run(
        kleio_argv("python", str(script), str(count), "--read", "0", "--run", uuid.uuid4().hex),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr.split("trial reserved with id: ")[1].split()[0]


def bench_stats(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    trial = _trial(root, env, 1_000_000)

    def stats(*args: str) -> None:
        subprocess.run(
            kleio_argv("stats", trial, *args),
            env=env,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    table = timed(lambda: stats("--sort", "loss"), runs)
    meanwhile = resources.latencies(root, env, 500, lambda: stats("--sort", "loss"))
    reader = root / "journal_read.py"
    reader.write_text(textwrap.dedent(JOURNAL_READ))
    sorted_api = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, str(reader), trial],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        count, seconds = done.stdout.split()
        assert int(count) == 1_000_000, count
        sorted_api.append(float(seconds))
    as_json = timed(lambda: stats("--sort", "loss", "--json"), runs)
    api = []
    for run in range(runs):  # a new child trial reads its parent's 1,000,000 records
        done = subprocess.run(
            kleio_argv("branch", trial, "--read", "1", "--tag", str(run)),
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        count, seconds = done.stdout.split()[1:3]
        assert int(count) == 1_000_000, count
        api.append(float(seconds))
    return [
        Figure("kleio stats, 1M records, --sort loss", "s", table, "<= 2 s"),
        Figure("kleio stats --json, 1M records, --sort", "s", as_json, "<= 2 s"),
        Figure("kleio_logger.statistics(), 1M records", "s", api, "<= 2 s"),
        Figure("Trial.statistics(sort='loss'), 1M", "s", sorted_api, "<= 2 s"),
        Figure("latency while kleio stats reads 1M", "ms", meanwhile, "<= 200 ms"),
    ]


def bench_branch(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    """`kleio branch` (a child that exits at once) of a parent of 1,000 and of 1,000,000."""
    figures = []
    small, large = _trial(root, env, 1_000), _trial(root, env, 1_000_000)
    sizes: dict[str, list[float]] = {"1k": [], "1M": []}
    tags = iter(range(10**6))

    def branch(trial: str) -> None:
        subprocess.run(
            kleio_argv("branch", trial, "--read", "2", "--tag", str(next(tags))),
            env=env,
            cwd=root,
            capture_output=True,
            check=True,
        )

    for _ in range(runs):  # interleaved: the machine's drift weighs on both alike
        for name, trial in (("1k", small), ("1M", large)):
            sizes[name] += timed(partial(branch, trial), 1)
    figures.append(
        Figure(
            "kleio branch, parent of 1M records",
            "s",
            sizes["1M"],
            "O(1): within noise of the 1k",
            sizes["1k"],
        )
    )
    journal = Path(env["XDG_DATA_HOME"]) / "kleio" / "journal.sqlite"
    stored: dict[str, list[float]] = {}
    for name, trial in (("1k", small), ("1M", large)):
        before = _journal_bytes(journal)
        for _ in range(runs):
            branch(trial)
        stored[name] = [(_journal_bytes(journal) - before) / runs / 1024]
    figures.append(
        Figure(
            "journal growth a branch, 1M parent",
            "KiB",
            stored["1M"],
            "O(1): as the 1k",
            stored["1k"],
        )
    )
    return figures


def _journal_bytes(path: Path) -> int:
    """The bytes the journal's pages in use take, once the daemon's writes are in it."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        pages, free, size = (
            db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    return int((pages - free) * size)


def _served_journal(
    root: Path, env: dict[str, str], name: str, maker: str, trials: int
) -> dict[str, str]:
    """A journal of ``trials`` made by the ``maker`` script, and the environment of a
    daemon (started) serving it alone."""
    data, run = root / f"{name}-data", root / f"{name}-run"
    journal = data / "kleio" / "journal.sqlite"
    journal.parent.mkdir(parents=True)
    run.mkdir()
    script = root / f"make_{name}.py"
    script.write_text(textwrap.dedent(maker))
    subprocess.run([sys.executable, str(script), str(journal), str(trials)], check=True, cwd=root)
    served = {**env, "XDG_DATA_HOME": str(data), "XDG_RUNTIME_DIR": str(run)}
    subprocess.run(kleio_argv("daemon", "start"), env=served, check=True, capture_output=True)
    return served


def bench_ls(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    ls_env = _served_journal(root, env, "ls", MAKE_TRIALS, 10_000)
    try:
        table = timed(
            lambda: subprocess.run(
                kleio_argv("ls"), env=ls_env, check=True, stdout=subprocess.DEVNULL
            ),
            runs,
        )
        as_json = timed(
            lambda: subprocess.run(
                kleio_argv("ls", "--json"), env=ls_env, check=True, stdout=subprocess.DEVNULL
            ),
            runs,
        )
    finally:
        subprocess.run(kleio_argv("daemon", "stop"), env=ls_env, capture_output=True)
    return [
        Figure("kleio ls, 10,000 trials", "s", table, "<= 0.5 s"),
        Figure("kleio ls --json, 10,000 trials", "s", as_json, "<= 0.5 s"),
    ]


def bench_where(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    """`kleio ls --where 'lr>0.5'` and ``Journal.trials(lr__gt=0.5)`` over 10,000 captured
    trials (about half match), beside the plain listing; and, once, the way it was done
    before (an ``info`` per trial)."""
    served = _served_journal(root, env, "where", MAKE_CONFIGURED_TRIALS, 10_000)
    script = root / "journal_where.py"
    script.write_text(textwrap.dedent(JOURNAL_WHERE))

    def ls(*args: str) -> str:
        return subprocess.run(
            kleio_argv("ls", *args), env=served, check=True, capture_output=True, text=True
        ).stdout

    try:
        where, plain = [], []
        for _ in range(runs):  # interleaved: the machine's drift weighs on both alike
            where += timed(partial(ls, "--where", "lr>0.5"), 1)
            plain += timed(ls, 1)
        listed = sorted(t["id"] for t in json.loads(ls("--where", "lr>0.5", "--json")))
        done = subprocess.run(
            [sys.executable, str(script), str(runs), "1"],
            env=served,
            check=True,
            capture_output=True,
            text=True,
        )
        api = json.loads(done.stdout)
    finally:
        subprocess.run(kleio_argv("daemon", "stop"), env=served, capture_output=True)
    assert listed == api["found"] == api["found_before"], "not the trials found before"
    assert 4_000 < len(listed) < 6_000, len(listed)
    return [
        Figure(
            f"kleio ls --where lr>0.5, 10,000 ({len(listed):,} match)",
            "s",
            where,
            "<= 2x kleio ls",
            plain,
        ),
        Figure("Journal.trials(lr__gt=0.5), 10,000", "s", api["trials"], "<= 0.5 s", api["ls"]),
        Figure(
            "before: ls + info per trial, 10,000",
            "s",
            [api["before"]],
            "(one run, for reference)",
            plain,
        ),
    ]
