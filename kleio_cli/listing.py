"""Listing the trials: ``kleio ls`` (filtered by status, tag or command-line option,
flat or as branch trees, as a table or JSON), and ``kleio tag``, which names the tags it
filters by."""

from __future__ import annotations

import sys
from typing import Any

from kleio_cli import render, statistics
from kleio_cli.request import call
from kleio_client import protocol


def ls(
    as_json: bool,
    statuses: tuple[str, ...] = (),
    tree: bool = False,
    tags: tuple[str, ...] = (),
    where: tuple[str, ...] = (),
) -> None:
    # The daemon judges status, tags and options in one read of the journal.
    wanted = statistics.conditions(list(where))
    trials = [
        t
        for t in call(
            "ls",
            status=list(statuses),
            tags=list(tags),
            where=[[c.key, c.op, c.value] for c in wanted],
        )
        if t.get("branch_kind") != protocol.SCRATCH
    ]
    if as_json:
        render.print_json([json_row(t) for t in trials])
        return
    if not trials:
        print(_nothing_listed(statuses, tags, where), file=sys.stderr)
        return
    if tree:
        trials, drawn = _as_tree(trials)
    else:
        drawn = [""] * len(trials)
    rows = [
        [
            lines + (render.short(t["id"]) or ""),
            t["status"],
            render.clip(render.command(t["command"])),
            render.when(t["created"]),
            t["host"],
            render.short(t["parent"]),
        ]
        for t, lines in zip(trials, drawn, strict=True)
    ]
    headers = ["ID", "STATUS", "COMMAND", "CREATED", "HOST", "PARENT"]
    if any(t.get("tags") for t in trials):
        headers.append("TAGS")
        for row, trial in zip(rows, trials, strict=True):
            row.append(",".join(trial.get("tags") or []) or None)
    print(render.table(headers, rows))


def _nothing_listed(
    statuses: tuple[str, ...], tags: tuple[str, ...], where: tuple[str, ...]
) -> str:
    filters = [f"--status {s}" for s in statuses] + [f"--tag {t}" for t in tags]
    filters += [f"--where {w!r}" for w in where]
    if not filters:
        return "no trials yet; run one with `kleio python train.py`"
    return f"no trial matches {' '.join(filters)}; `kleio ls` lists them all"


def json_row(trial: dict[str, Any]) -> dict[str, Any]:
    """A listed trial as `kleio ls --json` (and the web view's /api/trials) gives it."""
    return {
        "id": trial["id"],
        "status": trial["status"],
        "command": render.command(trial["command"]),
        "argv": trial["command"],
        "created": render.iso(trial["created"]),
        "parent": trial["parent"],
        "host": trial["host"],
        "executions": trial["executions"],
        "tags": trial.get("tags") or [],
    }


def tag(trial: str, names: list[str], remove: bool, as_json: bool) -> None:
    result = call("tag", id=trial, **{"remove" if remove else "add": names})
    if as_json:
        render.print_json(result)
        return
    print(f"{render.short(result['id'])}: {', '.join(result['tags']) or 'no tags'}")


def _as_tree(trials: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Trials in branch-tree order (each child under its parent, oldest first) and the
    tree drawn before each id (``├─ `` for a child with a sibling after it, ``└─ `` for
    the last, ``│  `` where an ancestor's siblings continue below); a trial whose parent
    is not listed is a root."""
    listed = {t["id"] for t in trials}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for trial in trials:
        parent = trial["parent"] if trial["parent"] in listed else None
        children.setdefault(parent, []).append(trial)
    ordered: list[dict[str, Any]] = []
    drawn: list[str] = []
    # Each entry: a trial, the lines of its ancestors' levels, and whether it is last.
    stack: list[tuple[dict[str, Any], str, bool | None]] = [
        (t, "", None) for t in reversed(children.get(None, []))
    ]
    while stack:
        trial, above, last = stack.pop()
        ordered.append(trial)
        drawn.append("" if last is None else above + ("└─ " if last else "├─ "))
        below = "" if last is None else above + ("   " if last else "│  ")
        kids = children.get(trial["id"], [])
        stack += [(c, below, i == len(kids) - 1) for i, c in reversed(list(enumerate(kids)))]
    return ordered, drawn
