"""What the framework tests share: a training script held at a point until the test has
interrupted it, run as a real `kleio` subprocess, then run again to resume."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kleio, trial_id

HELD_TIMEOUT = 240.0  # seconds a framework may take to import and reach the hold (busy CI)


def needs(*modules: str) -> None:
    """Skip the calling test module where one of ``modules`` is not installed, without
    importing it here (a framework takes seconds to import; the scripts import it)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}", allow_module_level=True)


def interrupted_then_resumed(
    kleio: Kleio,
    workdir: Path,
    name: str,
    *args: str,
    between: Callable[[], None] = lambda: None,
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run ``name`` with ``--hold-at`` among ``args`` until it says it is held, Ctrl-C it
    as a person would, call ``between``, then run the same command again: the trial's id
    and the second run."""
    held = workdir / "held"
    process = kleio.popen("python", name, *args, text=True)
    try:
        deadline = time.monotonic() + HELD_TIMEOUT
        while not held.exists():
            assert process.poll() is None, f"the script ended before its hold: {_tail(process)}"
            assert time.monotonic() < deadline, f"the script never reached its hold ({held})"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=HELD_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    trial = trial_id(err)
    between()
    (workdir / "resumed").touch()  # the hold holds no more
    second = kleio.ok("python", name, *args, timeout=HELD_TIMEOUT)
    assert trial_id(second.stderr) == trial, "the second run resumed another trial"
    return trial, second


def _tail(process: subprocess.Popen) -> str:
    _, err = process.communicate()
    return str(err)[-2000:]


def steps_of(rows: Any, key: str = "step") -> list[Any]:
    """The values of ``key`` in the rows that have it, in order."""
    return [row[key] for row in rows if row.get(key) is not None]


def final_line(done: subprocess.CompletedProcess[str]) -> str:
    return [line for line in done.stdout.splitlines() if line.startswith("final ")][-1]
