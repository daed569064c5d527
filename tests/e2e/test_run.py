"""``kleio CMD``: a trial runs, streams, is journaled, and exits like the command."""

from __future__ import annotations

import json

import pytest

from tests.conftest import trial_id

LOGS_THREE = """
    import sys
    from kleio_client import kleio_logger
    print("starting", flush=True)
    for epoch in range(3):
        kleio_logger.log_statistic(epoch=epoch, loss=1.0 / (epoch + 1), tag="é")
    print("done", file=sys.stderr)
"""


def test_run_streams_output_and_journals_statistics(kleio, script):
    name = script(LOGS_THREE)
    done = kleio("python", name, "--lr", "0.1")
    assert done.returncode == 0, done.stderr
    assert "starting" in done.stdout
    assert "done" in done.stderr
    tid = trial_id(done.stderr)
    assert kleio.json("stats", tid) == [
        {"epoch": 0, "loss": 1.0, "tag": "é"},
        {"epoch": 1, "loss": 0.5, "tag": "é"},
        {"epoch": 2, "loss": 1.0 / 3, "tag": "é"},
    ]
    [trial] = kleio.json("ls")
    assert trial["id"] == tid
    assert trial["status"] == "completed"
    assert trial["command"] == "python train.py --lr 0.1"
    assert trial["parent"] is None
    assert trial["created"]


def test_prefix_form_equals_run_subcommand(kleio, script):
    name = script(LOGS_THREE)
    first = kleio("python", name)
    second = kleio("run", "python", name)
    assert second.returncode == 0
    assert f"trial {trial_id(first.stderr)[:12]} is completed" in second.stderr
    assert len(kleio.json("ls")) == 1


def test_run_double_dash_runs_a_command_named_like_a_subcommand(kleio, workdir):
    (workdir / "ls").write_text("#!/bin/sh\necho I am not kleio ls\n")
    (workdir / "ls").chmod(0o755)
    done = kleio("run", "--", "./ls")
    assert done.returncode == 0, done.stderr
    assert "I am not kleio ls" in done.stdout


def test_exit_code_of_the_command_is_kleios(kleio, script):
    name = script("import sys\nprint('bye')\nsys.exit(7)\n")
    done = kleio("python", name)
    assert done.returncode == 7
    [trial] = kleio.json("ls")
    assert trial["status"] == "broken"


def test_crash_is_broken_with_traceback_journaled(kleio, script):
    name = script("""
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=1, loss=0.5)
        raise RuntimeError("diverged")
    """)
    done = kleio("python", name)
    assert done.returncode == 1
    assert "RuntimeError: diverged" in done.stderr
    tid = trial_id(done.stderr)
    # logged before the exception: in the journal when kleio returns
    assert kleio.json("stats", tid) == [{"step": 1, "loss": 0.5}]
    info = kleio.json("info", tid)
    assert info["status"] == "broken"
    [execution] = info["executions"]
    assert execution["exit_code"] == 1
    assert execution["pid"] > 0 and execution["host"]
    assert execution["start"] and execution["end"]
    assert "RuntimeError: diverged" in kleio.ok("cat", tid).stdout


def test_rerunning_a_broken_trial_resumes_it_as_a_new_execution(kleio, script, workdir):
    name = script("""
        import pathlib, sys
        from kleio_client import kleio_logger
        marker = pathlib.Path("crashed-once")
        kleio_logger.log_statistic(run=1 if not marker.exists() else 2)
        if not marker.exists():
            marker.write_text("x")
            sys.exit(3)
    """)
    first = kleio("python", name)
    assert first.returncode == 3
    second = kleio("python", name)
    assert second.returncode == 0, second.stderr
    assert trial_id(first.stderr) == trial_id(second.stderr)
    assert "resuming the broken trial as execution 2" in second.stderr
    info = kleio.json("info", trial_id(second.stderr))
    assert [e["status"] for e in info["executions"]] == ["broken", "completed"]
    assert info["status"] == "completed"
    statuses = [h["status"] for h in info["history"]]
    assert statuses == ["new", "running", "broken", "running", "completed"]


def test_rerunning_a_completed_trial_does_not_execute_it(kleio, script, workdir):
    name = script("""
        import pathlib
        with open("runs.txt", "a") as f:
            f.write("ran\\n")
    """)
    assert kleio("python", name).returncode == 0
    again = kleio("python", name)
    assert again.returncode == 0
    assert "is completed" in again.stderr
    assert (workdir / "runs.txt").read_text() == "ran\n"


def test_output_with_non_ascii_and_partial_lines_is_journaled_byte_for_byte(kleio, script):
    name = script("""
        import sys, time
        sys.stdout.write("αβγ 日本語 ")
        sys.stdout.flush()
        time.sleep(0.2)
        sys.stdout.write("no newline at the end")
        sys.stdout.flush()
        sys.stdout.buffer.write(b"\\xff\\xfe raw bytes\\n")
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    expected = "αβγ 日本語 no newline at the end".encode() + b"\xff\xfe raw bytes\n"
    import subprocess
    import sys as _sys

    raw = subprocess.run(
        [_sys.executable, "-m", "kleio_cli", "cat", trial_id(done.stderr)],
        cwd=kleio.cwd,
        capture_output=True,
        timeout=60,
    )
    assert raw.stdout == expected


def test_cat_separates_streams_and_keeps_executions_in_order(kleio, script):
    name = script("""
        import os, sys
        print("out", os.environ["KLEIO_EXECUTION"])
        print("err", os.environ["KLEIO_EXECUTION"], file=sys.stderr)
        sys.exit(1 if os.environ["KLEIO_EXECUTION"] == "1" else 0)
    """)
    kleio("python", name)
    tid = trial_id(kleio("python", name).stderr)
    assert kleio.ok("cat", tid).stdout.splitlines() == [
        "--- execution 1 ---",
        "out 1",
        "err 1",
        "--- execution 2 ---",
        "out 2",
        "err 2",
    ]
    assert kleio.ok("cat", tid, "--stream", "stderr").stdout.splitlines() == [
        "--- execution 1 ---",
        "err 1",
        "--- execution 2 ---",
        "err 2",
    ]


def test_values_round_trip_including_nan_and_numpy(kleio, script):
    name = script("""
        import numpy as np
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(nan=float("nan"), inf=float("inf"), none=None, flag=True,
                                   nested={"a": [1, 2.5, "x"]}, i64=np.int64(5),
                                   f32=np.float32(0.5), zero_d=np.array(3.0))
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    raw = kleio.ok("stats", trial_id(done.stderr), "--json").stdout
    [record] = json.loads(raw)  # strict JSON: NaN and infinities are null there
    assert (record.pop("nan"), record.pop("inf")) == (None, None)
    table = kleio.ok("stats", trial_id(done.stderr), "--keys", "nan,inf").stdout.splitlines()
    assert table[1].split() == ["nan", "inf"]  # stored as logged
    assert record == {
        "none": None,
        "flag": True,
        "nested": {"a": [1, 2.5, "x"]},
        "i64": 5,
        "f32": 0.5,
        "zero_d": 3.0,
    }


def test_stats_sort_by_any_key(kleio, script):
    name = script("""
        from kleio_client import kleio_logger
        for step, loss in [(1, 0.3), (2, 0.1), (3, 0.2)]:
            kleio_logger.log_statistic(step=step, loss=loss)
    """)
    tid = trial_id(kleio("python", name).stderr)
    records = json.loads(kleio.ok("stats", tid, "--sort", "loss", "--json").stdout)
    assert [r["step"] for r in records] == [2, 3, 1]
    table = kleio.ok("stats", tid, "--sort", "loss").stdout.splitlines()
    assert table[0].split() == ["step", "loss"]
    assert [line.split()[0] for line in table[1:]] == ["2", "3", "1"]
    missing = kleio("stats", tid, "--sort", "nope")
    assert missing.returncode != 0
    assert "nope" in missing.stderr and "loss" in missing.stderr


@pytest.mark.slow
def test_unknown_and_ambiguous_ids_are_clear_errors(kleio, script):
    firsts: list[str] = []
    for seed in range(40):  # until two ids share their first digit: 6 trials on average
        name = script(f"print({seed})\n", name=f"s{seed}.py")
        firsts.append(trial_id(kleio.ok("python", name).stderr)[0])
        if firsts.count(firsts[-1]) > 1:
            break
    shared = firsts[-1]
    unknown = kleio("info", "ffffffffffff0000")
    assert unknown.returncode == 3
    assert unknown.stderr.count("\n") == 1 and "no trial" in unknown.stderr
    ids = [t["id"] for t in kleio.json("ls")]
    ambiguous = kleio("stats", shared)
    assert ambiguous.returncode == 3
    assert "several trials" in ambiguous.stderr
    assert kleio("info", "not-an-id").returncode == 3
    assert kleio.ok("info", ids[0][:10], "--json")


def test_missing_command_is_a_clear_error(kleio):
    done = kleio("run", "python", "does_not_exist.py")
    assert done.returncode == 2  # as python's own exit status
    assert done.stderr.startswith("kleio: no such script: does_not_exist.py")
    not_found = kleio("run", "no-such-program-kleio")
    assert not_found.returncode == 127
    assert "command not found" in not_found.stderr
    typo = kleio("sats", "abc")
    assert typo.returncode == 2
    assert typo.stderr.startswith("kleio: did you mean 'kleio stats'?")
    assert kleio.json("ls") == []  # neither a missing script nor a typo is a trial


def test_info_reads_as_sections(kleio, script):
    name = script(LOGS_THREE)
    tid = trial_id(kleio("python", name, "--lr", "0.1").stderr)
    text = kleio.ok("info", tid[:6]).stdout
    assert "Trial" in text and "Executions" in text
    assert tid in text
    assert "3 records" in text
    table = kleio.ok("ls").stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "COMMAND", "CREATED", "HOST", "PARENT"]
    assert table[1].startswith(tid[:8])
    # aligned: every column starts at the same offset on every line
    assert table[1].index("completed") == table[0].index("STATUS")


def test_kleio_inside_a_trial_starts_its_own_trial(kleio, script):
    script(
        """
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(where="inner")
    """,
        name="inner.py",
    )
    outer = script(
        f"""
        import subprocess, sys
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(where="outer")
        done = subprocess.run({kleio.argv("python", "inner.py")!r}, capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)
    """,
        name="outer.py",
    )
    done = kleio("python", outer)
    assert done.returncode == 0, done.stderr
    ids = [
        line.split(": ")[1]
        for line in done.stderr.splitlines()
        if line.startswith("trial reserved with id: ")
    ]
    assert len(set(ids)) == 2
    assert kleio.json("stats", ids[0]) == [{"where": "outer"}]
    assert kleio.json("stats", ids[1]) == [{"where": "inner"}]


def test_a_child_left_holding_the_output_does_not_hold_kleio(kleio, script):
    import time

    name = script("""
        import subprocess
        subprocess.Popen(["sleep", "60"])  # inherits stdout and stderr
        print("parent done", flush=True)
    """)
    started = time.monotonic()
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30  # a run on a busy machine; the child holds 60 s
    assert kleio.json("info", trial_id(done.stderr))["status"] == "completed"


@pytest.mark.slow
def test_output_larger_than_a_wire_message_is_kept_whole(kleio, script):
    name = script("""
        import sys
        line = b"x" * 1023 + b"\\n"
        for _ in range(70 * 1024):
            sys.stdout.buffer.write(line)
    """)
    done = kleio("python", name, timeout=180)
    assert done.returncode == 0
    import subprocess
    import sys

    cat = subprocess.run(
        [sys.executable, "-m", "kleio_cli", "cat", trial_id(done.stderr)],
        cwd=kleio.cwd,
        capture_output=True,
        timeout=180,
    )
    assert cat.returncode == 0, cat.stderr[-2000:]
    assert len(cat.stdout) == 70 * 1024 * 1024


def test_a_command_the_system_cannot_execute_is_one_line_and_a_broken_trial(kleio, workdir):
    program = workdir / "noshebang"
    program.write_text("echo this file has no interpreter line\n")
    program.chmod(0o755)
    done = kleio("./noshebang")
    assert done.returncode == 126
    assert "kleio: cannot run ./noshebang: Exec format error" in done.stderr
    assert "Traceback" not in done.stderr
    info = kleio.json("info", trial_id(done.stderr))
    assert info["status"] == "broken"
