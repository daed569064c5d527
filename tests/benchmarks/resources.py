"""Latency, sustained ingest and memory: how soon a record is committed while the script
runs, how many records a second the daemon commits, and what Kleio costs in memory."""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.benchmarks.harness import Figure, kleio_argv

LATENCY = """
import sys, time
from kleio_client import kleio_logger
print("ready", flush=True)
sys.stdin.readline()
for index in range(int(sys.argv[1])):
    kleio_logger.log_statistic(index=index, at=time.time())
    time.sleep(0.01)
"""

FLOOD = """
import os, sys, time
import psutil
me = psutil.Process()
before = me.memory_info().rss
from kleio_client import kleio_logger
count = int(sys.argv[1])
start = time.perf_counter()
peak = 0
for index in range(count):
    kleio_logger.log_statistic(step=index, loss=0.5, acc=0.9)
    if index % 100_000 == 0:
        peak = max(peak, me.memory_info().rss)
loop = time.perf_counter() - start
kleio_logger.flush()
total = time.perf_counter() - start
peak = max(peak, me.memory_info().rss)
print(f"{count / total} {(peak - before) / 2**20} {loop}")
"""


def bench_latency(root: Path, env: dict[str, str]) -> list[Figure]:
    return [
        Figure("record committed after logged (latency)", "ms", latencies(root, env), "<= 200 ms")
    ]


def latencies(
    root: Path,
    env: dict[str, str],
    records: int = 200,
    meanwhile: Callable[[], object] | None = None,
) -> list[float]:
    """Per record, in ms: from its `time.time()` in the script to its arrival through the
    daemon's live feed, published right after the commit; with ``meanwhile`` called again
    and again in another thread while the script logs (a reader of the journal)."""
    import msgpack
    import zmq

    from kleio_client import protocol

    script = root / "latency.py"
    script.write_text(textwrap.dedent(LATENCY))
    run = subprocess.Popen(
        kleio_argv("python", str(script), str(records), uuid.uuid4().hex),
        env=env,
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None and run.stdin is not None
    run.stdout.readline()
    listed = subprocess.run(
        kleio_argv("ls", "--json"), env=env, capture_output=True, text=True, check=True
    ).stdout
    trial = [t for t in json.loads(listed) if t["status"] == "running"][0]["id"]
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, protocol.live_topic(trial, protocol.STATISTIC))
    runtime = Path(env["XDG_RUNTIME_DIR"]) / "kleio"
    sub.connect(protocol.Endpoints.in_directory(str(runtime)).publish)
    time.sleep(0.3)
    logging = threading.Event()
    reader = threading.Thread(target=_repeat, args=(meanwhile, logging), daemon=True)
    if meanwhile is not None:
        logging.set()
        reader.start()
        time.sleep(0.5)
    run.stdin.write("go\n")
    run.stdin.flush()
    delays: list[float] = []
    while len(delays) < records and sub.poll(5000):
        message = protocol.unpack(sub.recv_multipart()[-1], limit=None)
        arrived = time.time()
        delays += [arrived - pair[1]["at"] for pair in msgpack.unpackb(message["records"])]
    logging.clear()
    if reader.is_alive():
        reader.join()
    sub.close(0)
    context.term()
    run.communicate(timeout=60)
    return [1000 * d for d in delays]


def _repeat(call: Callable[[], object] | None, going: threading.Event) -> None:
    while call is not None and going.is_set():
        call()


def bench_flood(root: Path, env: dict[str, str], runs: int, records: int) -> list[Figure]:
    """Sustained ingest and the client's memory, logging as fast as possible, and the
    daemon's memory: idle, and at its peak during the floods."""
    script = root / "flood.py"
    script.write_text(textwrap.dedent(FLOOD))
    subprocess.run(kleio_argv("daemon", "start"), env=env, capture_output=True, check=True)
    status = subprocess.run(
        kleio_argv("daemon", "status", "--json"),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pid = int(json.loads(status)["pid"])
    daemon = psutil.Process(pid)
    idle = [daemon.memory_info().rss / 2**20]
    rates, client, daemon_peak = [], [], []
    for _ in range(runs):
        run = subprocess.Popen(
            kleio_argv("python", str(script), str(records), uuid.uuid4().hex),
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        peak = 0.0
        while run.poll() is None:
            peak = max(peak, daemon.memory_info().rss / 2**20)
            time.sleep(0.05)
        rate, memory, _ = (float(x) for x in run.communicate()[0].split())
        rates.append(rate)
        client.append(memory)
        daemon_peak.append(peak)
    big = 10_000_000
    run = subprocess.Popen(
        kleio_argv("python", str(script), str(big), uuid.uuid4().hex),
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    flood_peak = 0.0
    while run.poll() is None:
        flood_peak = max(flood_peak, daemon.memory_info().rss / 2**20)
        time.sleep(0.1)
    run.communicate()
    return [
        Figure(f"sustained ingest, {records:,} records", "rec/s", rates, ">= 500,000 rec/s"),
        Figure("client memory added (logging 1M)", "MiB", client, "<= 10 MiB"),
        Figure("daemon memory, idle", "MiB", idle, "<= 60 MiB"),
        Figure("daemon memory, peak during 1M floods", "MiB", daemon_peak, "bounded"),
        Figure("daemon memory, peak during a 10M flood", "MiB", [flood_peak], "bounded"),
    ]
