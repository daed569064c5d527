"""Deleting from the journal: ``kleio rm`` (trials, after asking) and ``kleio gc`` (the
artifacts' bytes no trial references any more).  The daemon decides what goes and
refuses what may not (kleiod/removal.py); this side asks, and says what went."""

from __future__ import annotations

import re
import sys
from typing import Any

import typer

from kleio_cli import render
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_FAILURE, EXIT_USAGE, CliError
from kleio_runtime.config import resolve

# A removal or a collection may read and delete much: as long as `kleio export` waits.
TIMEOUT = 3600.0
_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def rm(trials: list[str], with_branches: bool, yes: bool, as_json: bool) -> None:
    with connect(resolve(), timeout=TIMEOUT) as client:
        plan = client.call("rm_plan", ids=trials, with_branches=with_branches)
        if not yes:
            _confirm(plan)
        # Exactly what was shown: a branch made since is refused, not removed unseen.
        removed = client.call("rm", ids=[trial["id"] for trial in plan])
    if as_json:
        render.print_json(removed)
    else:
        render.print_lines([_removed(trial) for trial in removed])
    if any(trial["artifacts"] for trial in removed):
        print(
            "kleio: `kleio gc` frees the bytes of the artifacts that no other trial logged too",
            file=sys.stderr,
        )


def _confirm(plan: list[dict[str, Any]]) -> None:
    if not sys.stdin.isatty():
        raise CliError(
            "kleio rm: no terminal to ask on; add --yes to remove without asking", EXIT_USAGE
        )
    rows = [
        [
            render.short(trial["id"]),
            trial["status"],
            trial["statistics"],
            trial["artifacts"],
            _described_command(trial),
        ]
        for trial in plan
    ]
    headers = ["ID", "STATUS", "STATISTICS", "ARTIFACTS", "COMMAND"]
    them = "it" if len(plan) == 1 else "them"
    print(
        f"kleio rm removes {_count(len(plan), 'trial')} and everything logged in {them}:",
        file=sys.stderr,
    )
    print(render.table(headers, rows), file=sys.stderr)
    print("Remove? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        print("kleio: nothing removed", file=sys.stderr)
        raise typer.Exit(EXIT_FAILURE)


def _described_command(trial: dict[str, Any]) -> str:
    text = render.clip(render.command(trial["command"]))
    if trial["branch_kind"] == "scratch":
        return f"{text}  (kleio pdb session of {render.short(trial['parent'])})"
    if trial["parent"] is not None:
        return f"{text}  (branch of {render.short(trial['parent'])})"
    return text


def _removed(trial: dict[str, Any]) -> str:
    logged = f"{_count(trial['statistics'], 'statistic')}, {_count(trial['artifacts'], 'artifact')}"
    return (
        f"removed {render.short(trial['id'])} ({trial['status']}): "
        f"{render.command(trial['command'])}; {logged}"
    )


def gc(grace: float, dry_run: bool, as_json: bool) -> None:
    with connect(resolve(), timeout=TIMEOUT) as client:
        done = client.call("gc", grace=grace, dry_run=dry_run)
    if as_json:
        render.print_json(done)
        return
    verb = "would free" if dry_run else "freed"
    print(
        f"{verb} {_count(done['blobs'], 'artifact blob')}, {_size(done['bytes'])}: "
        f"no trial references them ({done['referenced_blobs']} referenced, kept)"
    )
    if done["leftovers"]:
        print(
            f"{verb} {_count(done['leftovers'], 'leftover')} of uploads or deletions cut "
            f"short, {_size(done['leftover_bytes'])}"
        )
    if done["recent_blobs"]:
        print(
            f"kleio: kept {_count(done['recent_blobs'], 'unreferenced blob')} "
            f"({_size(done['recent_bytes'])}) stored within the last {_duration(grace)}: "
            "a running trial may be about to record them; `kleio gc --grace 0` frees them "
            "too when no trial runs",
            file=sys.stderr,
        )


def seconds(text: str) -> float:
    """``30s``, ``10m``, ``1h``, ``2d`` or a number of seconds."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: 30s, 10m, 1h, 2d, or 0", param_hint="--grace"
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def _duration(value: float) -> str:
    for unit in ("d", "h", "m"):
        if value >= _UNITS[unit] and value % _UNITS[unit] == 0:
            return f"{value / _UNITS[unit]:g}{unit}"
    return f"{value:g}s"


def _size(count: int) -> str:
    if count < 1024:
        return _count(count, "byte")
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit} ({count} bytes)"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
