"""A mistyped subcommand runs no program and makes no trial: the real `kleio` in a scratch
directory holding files named like its arguments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import trial_id


def _no_trial(kleio) -> None:
    assert kleio.json("ls") == []


@pytest.mark.parametrize(
    "typed, meant",
    [
        (["stat", "44a2"], "stats"),
        (["tial", "-f", "44a2"], "tail"),
        (["lss"], "ls"),
        (["delete", "44a2"], "rm"),
        (["show", "44a2"], "info"),
        (["brnch", "44a2", "--timestamp", "epoch=1"], "branch"),
        (["-d", "stat", "44a2"], "stats"),
    ],
)
def test_a_mistyped_subcommand_is_refused_and_runs_nothing(
    kleio, workdir: Path, typed: list[str], meant: str
):
    (workdir / "44a2").write_text("precious")
    done = kleio(*typed)
    assert done.returncode == 2
    word = next(w for w in typed if not w.startswith("-"))
    assert done.stderr.strip() == (
        f"kleio: did you mean 'kleio {meant}'? To run the program '{word}' as a trial, "
        f"write 'kleio run -- {word} ...'"
    )
    assert done.stdout == ""
    assert (workdir / "44a2").read_text() == "precious"
    _no_trial(kleio)


def test_kleio_rm_never_runs_bin_rm(kleio, workdir: Path):
    (workdir / "44a2").write_text("precious")
    done = kleio("rm", "44a2")
    assert done.returncode != 0
    assert (workdir / "44a2").read_text() == "precious"
    _no_trial(kleio)


def test_the_program_still_runs_as_a_trial_when_asked_for_by_run(kleio, workdir: Path):
    (workdir / "data.txt").write_text("x")
    done = kleio("run", "--", "stat", "data.txt")
    assert done.returncode == 0, done.stderr
    assert "data.txt" in done.stdout
    trial_id(done.stderr)


def test_launchers_and_the_user_s_own_programs_are_not_typos(kleio, workdir: Path):
    program = workdir / "bin" / "train"  # two edits from `tail`: a program of that name runs
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho trained\n")
    program.chmod(0o755)
    env = {**os.environ, "PATH": f"{program.parent}{os.pathsep}{os.environ['PATH']}"}
    assert kleio("train", env=env).stdout.strip() == "trained"
    assert kleio("sh", "-c", "echo shell").stdout.strip() == "shell"


def test_a_missing_script_makes_no_trial(kleio):
    done = kleio("python", "nosuch.py", "--lr", "0.1")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("kleio: no such script: nosuch.py")
    done = kleio("python", "-u", "-W", "ignore", "missing/train.py")
    assert done.returncode == 2
    _no_trial(kleio)


def test_a_mistyped_option_of_run_is_named_as_an_option(kleio):
    done = kleio("run", "--detatch", "python", "train.py")
    assert done.returncode == 2
    assert done.stderr.strip() == "kleio: no such option: --detatch; did you mean --detach?"
    _no_trial(kleio)


def test_which_first_words_are_typos_and_which_are_programs():
    from kleio_cli import prefix_form
    from kleio_cli.app import command_names

    commands = command_names()
    meant = {w: prefix_form.typo(w, commands) for w in ("stat", "tial", "lss", "brnch", "inf")}
    assert meant == {"stat": "stats", "tial": "tail", "lss": "ls", "brnch": "branch", "inf": "info"}
    for program in ("python3.11", "sh", "gcc", "srun", "uv", "torchrun", "./ls", "/bin/stat"):
        assert prefix_form.typo(program, commands) is None, program
