"""What the CLI says when there is nothing to show or something is wrong: the real
`kleio` against a real daemon, one line, the `kleio:` prefix, no exception's name."""

from __future__ import annotations

import json
import os
from pathlib import Path

from wcwidth import wcswidth

from tests.conftest import Env, trial_id

SWEEP = """
    import sys
    from kleio_client import kleio_logger
    for epoch in range(3):
        kleio_logger.log_statistic(epoch=epoch, loss=1.0 / (epoch + 1))
"""


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kleio: "), stderr
    assert "Error" not in lines[0], stderr  # no exception's class name
    return lines[0]


def test_filters_that_match_nothing_say_so_and_malformed_ones_are_refused(kleio, script):
    name = script(SWEEP)
    trial = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    done = kleio.ok("ls", "--where", "lr>100")
    assert done.stdout == ""
    assert done.stderr.strip() == "no trial matches --where 'lr>100'; `kleio ls` lists them all"
    done = kleio.ok("stats", trial, "--where", "epoch>100")
    assert done.stderr.strip() == (
        f"no record matches --where 'epoch>100'; `kleio stats {trial}` shows them all"
    )
    for command in (["ls"], ["stats", trial]):
        done = kleio(*command, "--where", "epoch>>3")
        assert done.returncode == 2
        assert "got 'epoch>>3'" in _one_line(done.stderr)


VALUES = """
    from kleio_client import kleio_logger
    kleio_logger.log_statistic(epoch=1, loss=float("nan"), 損失=1.5)
    kleio_logger.log_statistic(epoch=2, loss=float("inf"), 損失=-float("inf"), note="データ")
    kleio_logger.log_statistic(epoch=3, loss=0.5, 損失=2.0, nested={"a": float("nan")})
"""


def _strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json_nan_and_infinities_as_null(kleio, script):
    trial = trial_id(kleio.ok("python", script(VALUES)).stderr)
    rows = _strict(kleio.ok("stats", trial, "--json").stdout)
    assert rows == [
        {"epoch": 1, "loss": None, "損失": 1.5},
        {"epoch": 2, "loss": None, "損失": None, "note": "データ"},
        {"epoch": 3, "loss": 0.5, "損失": 2.0, "nested": {"a": None}},
    ]
    every = _strict(kleio.ok("stats", trial, "--json", "--all-executions").stdout)
    assert [row["record"]["loss"] for row in every] == [None, None, 0.5]
    columns = _strict(kleio.ok("stats", trial, "--json", "--keys", "epoch,loss").stdout)
    assert [row["loss"] for row in columns] == [None, None, 0.5]


def test_tables_align_wide_characters_by_their_display_width(kleio, script):
    trial = trial_id(kleio.ok("python", script(VALUES)).stderr)
    lines = kleio.ok("stats", trial).stdout.splitlines()
    assert lines[0].split() == ["epoch", "loss", "損失", "note", "nested"]

    def starts(line: str) -> list[int]:
        """The display column where each field of ``line`` starts."""
        found, column, previous = [], 0, " "
        for char in line:
            if char != " " and previous == " ":
                found.append(column)
            column += max(wcswidth(char), 0)
            previous = char
        return found

    header = starts(lines[0])
    for line in lines[1:]:
        assert starts(line)[: len(header)] == header[: len(starts(line))], lines


def test_importing_a_file_that_is_not_an_export_says_so_and_a_second_import_adds_nothing(
    kleio, script, workdir: Path
):
    done = kleio("import", str(workdir / script(SWEEP)))
    assert done.returncode == 2
    assert "is not a kleio export" in _one_line(done.stderr)

    name = script(
        "from kleio_client import kleio_logger\n"
        "kleio_logger.log_artifact('w.bin', b'weights', epoch=1)\n",
        name="art.py",
    )
    kleio.ok("python", name)
    kleio.ok("export", "-o", str(workdir / "all.kleio"))
    again = kleio.ok("import", str(workdir / "all.kleio"))
    assert again.stderr.strip() == (
        "imported 0 trials (0 chunks of records, 0 artifacts); 1 already here"
    )


def test_a_data_directory_that_cannot_be_one_names_the_setting(kleio, isolated: Env):
    blocker = isolated.home / "a-file"
    blocker.write_text("")
    env = {**os.environ, "KLEIO_DATA_DIR": str(blocker / "kleio")}
    done = kleio("ls", env=env)
    assert done.returncode == 5
    line = _one_line(done.stderr)
    assert f"cannot use {blocker / 'kleio'}: not a directory" in line
    assert "KLEIO_DATA_DIR" in line


def test_a_runtime_directory_that_cannot_be_one_names_the_setting(kleio, isolated: Env):
    blocker = isolated.home / "a-file"
    blocker.write_text("")
    env = {**os.environ, "KLEIO_RUNTIME_DIR": str(blocker / "run")}
    done = kleio("ls", env=env)
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert "cannot use the runtime directory" in line and "KLEIO_RUNTIME_DIR" in line
