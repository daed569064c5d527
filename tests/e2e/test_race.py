"""The same command started twice at once: exactly one runs, under a real race."""

from __future__ import annotations

import re
import socket

import pytest

from tests.conftest import first_to_exit

RACE_ROUNDS = 10


@pytest.mark.slow
def test_two_terminals_start_the_same_command_exactly_one_runs(kleio, script, workdir):
    name = script("""
        import os, sys, time
        with open("ran-" + sys.argv[2], "a") as f:
            f.write("x")
        deadline = time.monotonic() + 300
        while not os.path.exists("go-" + sys.argv[2]):  # runs until the other is refused
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    """)
    kleio.ok("daemon", "start")
    for seed in range(RACE_ROUNDS):
        first = kleio.popen("python", name, "--seed", str(seed))
        second = kleio.popen("python", name, "--seed", str(seed))
        first_to_exit([first, second])
        (workdir / f"go-{seed}").touch()
        results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in (first, second)]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 4], results
        refused = next(err for code, err in results if code == 4)
        lines = [line for line in refused.splitlines() if line.strip()]
        assert len(lines) == 1, refused
        assert re.search(r"trial [0-9a-f]{12} is already running on host ", lines[0])
        assert socket.gethostname() in lines[0]
        assert re.search(r"pid \d+, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[0])
        assert (workdir / f"ran-{seed}").read_text() == "x"
    trials = kleio.json("ls")
    assert len(trials) == RACE_ROUNDS
    assert all(t["executions"] == 1 for t in trials)
