"""README.md tells the truth: its quick start and the examples of the trials it makes
(`ls`, `info`, `cat`, `stats`, a branch's `stats`) are what the real commands print,
run here from the checkout as the README says.  Ids, times, hosts, pids, paths and
package counts differ from one machine to the next: they are compared as placeholders."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, trial_id

README = REPO / "README.md"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
HEX = re.compile(r"\b[0-9a-f]{7,64}\b")


def examples(text: str) -> dict[str, list[str]]:
    """Each ``$ kleio ...`` line of the README's code blocks, and the lines it shows
    printed after it (up to the next ``$`` line or the block's end); the first example
    of each command."""
    found: dict[str, list[str]] = {}
    for block in re.findall(r"^ *```[a-z]*\n(.*?)^ *```", text, flags=re.S | re.M):
        lines: list[str] | None = None
        for line in (line.strip() for line in block.splitlines()):
            if line.startswith("$ kleio "):
                lines = [] if line[2:] not in found else None
                if lines is not None:
                    found[line[2:]] = lines
            elif lines is not None:
                lines.append(line)
    return found


def quick_start_output(text: str) -> list[str]:
    block = text.split("The first line ends with:", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines() if line]


def tokens(lines: list[str], ids: dict[str, str]) -> list[list[str]]:
    """Lines as words, with what differs between machines made placeholders; the README's
    ids (and their prefixes) made the ids of this run's trials."""
    host = socket.gethostname()
    out = []
    for line in lines:
        for written, real in ids.items():
            for length in (32, 12, 8, 5, 4):
                line = line.replace(written[:length], real[:length])
        line = TIME.sub("<time>", line)
        out.append(["<host>" if word in (host, "vm") else word for word in line.split()])
    return out


def run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "kleio_cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return done


def _readme_id(text: str, command: str) -> str:
    """The id the README shows for the trial of ``command``."""
    for block in text.split(f"$ kleio {command}\n")[1:]:
        match = re.search(r"trial reserved with id: ([0-9a-f]{32})", block.split("$ ")[0])
        if match:
            return match.group(1)
    raise AssertionError(f"the README shows no id for `kleio {command}`")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_readme_s_quick_start_and_examples_are_what_kleio_prints():
    text = README.read_text()
    shown = examples(text)
    first = run("python", "examples/train.py", "--epochs", "5")
    printed = (first.stderr + first.stdout).splitlines()
    expected = quick_start_output(text)
    assert re.fullmatch(r"trial reserved with id: [0-9a-f]{32}", expected[0])
    assert printed[0].startswith("trial reserved with id: ")
    assert printed[1:] == expected[1:]
    quick = trial_id(first.stderr)
    crashing = ("python", "examples/train.py", "--epochs", "5", "--crash-at-epoch", "3")
    crashed = trial_id(run(*crashing).stderr)
    run(*crashing)
    branched = run("branch", quick, "--timestamp", "epoch=3", "--lr", "0.05")
    child = trial_id(branched.stderr)
    ids = {
        expected[0].rsplit(" ", 1)[1]: quick,
        _readme_id(text, " ".join(crashing)): crashed,
        _readme_id(text, "branch 583e --timestamp epoch=3 --lr 0.05"): child,
    }

    def compared(command: str, only: slice = slice(None)) -> None:
        assert command in shown, f"the README has no example of `{command}`"
        args = command.split()[1:]
        real = run(*[_real(a, ids) for a in args])
        printed = [line.strip() for line in (real.stdout + real.stderr).splitlines()]
        assert tokens(printed, {})[only] == tokens(shown[command], ids)[only], command

    again = run("python", "examples/train.py", "--epochs", "5")
    assert [again.stderr.strip()] == [
        line.replace("583e6c847070", quick[:12])
        for line in shown["kleio python examples/train.py --epochs 5"]
    ]
    branch_printed = [line.strip() for line in (branched.stderr + branched.stdout).splitlines()]
    assert tokens(branch_printed, {}) == tokens(
        shown["kleio branch 583e --timestamp epoch=3 --lr 0.05"], ids
    )
    compared("kleio ls")
    compared("kleio ls --tree")
    compared("kleio cat 97443 --stream stdout")
    compared("kleio stats 583e --sort loss")
    compared("kleio stats 583e --json")
    compared(f"kleio stats {_short(ids, child)}")
    compared(f"kleio compare 583e {_short(ids, child)} --stats epoch,loss --best loss")
    info = shown["kleio info 583e"]
    real = run("info", quick).stdout.splitlines()
    # What each line of `kleio info` is (labels, sections, table headers), then the
    # artifacts: the values in between are this machine's.
    assert _labels(real) == _labels(info)
    artifacts = real.index("Artifacts")
    assert tokens([r.strip() for r in real[artifacts:]], {}) == tokens(
        info[info.index("Artifacts") :], ids
    )


def _labels(lines: list[str]) -> list[str]:
    """The first word of each line: a section's title, a field's name, a table's header."""
    return [line.split()[0] for line in lines if line.strip()]


def _real(arg: str, ids: dict[str, str]) -> str:
    for written, real in ids.items():
        if len(arg) >= 4 and written.startswith(arg):
            return real[: len(arg)]
    return arg


def _short(ids: dict[str, str], trial: str) -> str:
    return next(written for written, real in ids.items() if real == trial)[:4]


@pytest.fixture(autouse=True)
def _quiet_repo(isolated, monkeypatch) -> None:
    """The README runs in the checkout, under its own user name: the trials' ids depend on
    the user, which the namespace makes the README's for this test."""
    monkeypatch.setenv("KLEIO_NAMESPACE", "root")
