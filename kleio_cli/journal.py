"""Reading and moving the journal's records: ``kleio cat`` (the output), ``kleio stats``
(the statistics), and ``kleio export`` and ``import`` (trials with their journals, to a
file and back)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kleio_cli import columnar, render, statistics
from kleio_cli.carriage import Collapser
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_cli.request import call
from kleio_client import segments as stored
from kleio_runtime.config import resolve


def cat(trial: str, stream: str | None, raw: bool = False) -> None:
    """The output in journal order; rewrites after carriage returns collapsed unless raw,
    and a line that says where each execution starts when there are several."""
    out = sys.stdout.buffer
    collapsers = {name: Collapser() for name in ("stdout", "stderr")}
    chunks = [c for c in call("cat", id=trial) if stream is None or c["stream"] == stream]
    headers = {} if raw else _execution_headers(trial, chunks)
    shown = None
    for chunk in chunks:
        if chunk["execution"] != shown and chunk["execution"] in headers:
            if shown is not None:
                _finish(out, collapsers)
            out.write(headers[chunk["execution"]])
        shown = chunk["execution"]
        data = chunk["data"]
        out.write(data if raw else collapsers[chunk["stream"]].feed(data))
    for collapser in collapsers.values():
        out.write(collapser.finish())
    out.flush()


def _finish(out: Any, collapsers: dict[str, Collapser]) -> None:
    """The partial lines left, each ended: what comes next starts a line of its own."""
    for collapser in collapsers.values():
        line = collapser.finish()
        if line:
            out.write(line + (b"\n" if not line.endswith(b"\n") else b""))


def _execution_headers(trial: str, chunks: list[dict[str, Any]]) -> dict[int, bytes]:
    """``--- execution 2: resumed after epoch=2 ---`` for each execution of several."""
    if len({c["execution"] for c in chunks}) < 2:
        return {}
    headers = {}
    for execution in call("info", id=trial)["executions"]:
        how = _resumed_how(execution)
        headers[execution["number"]] = (
            f"--- execution {execution['number']}{f': {how}' if how else ''} ---\n".encode()
        )
    return headers


def _resumed_how(execution: dict[str, Any]) -> str | None:
    if execution.get("resume_point") is not None:
        return "resumed " + (render.landmark(execution.get("resumed_after")) or "at a checkpoint")
    return "from scratch" if execution.get("restarted") and execution["number"] > 1 else None


@dataclass(frozen=True)
class StatsQuery:
    """What `kleio stats` shows: which records, which keys, in what order and form."""

    trial: str
    sort: str | None = None
    where: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # all keys when empty
    form: str = "table"  # table, csv or json
    all_executions: bool = False


def stats(query: StatsQuery) -> None:
    if not query.all_executions:
        _effective_stats(query)
        return
    where = statistics.conditions(list(query.where))
    rows = [
        row
        for row in call("stats", id=query.trial, sort=query.sort, all_executions=True)
        if all(c.holds(row["record"]) for c in where)
    ]
    if query.form == "json":
        render.print_json(
            [
                {
                    "trial": row["trial"],
                    "execution": row["execution"],
                    "superseded": row["superseded"],
                    "record": _selected(row["record"], query.keys),
                }
                for row in rows
            ]
        )
        return
    if not rows:
        print(_nothing_shown(query), file=sys.stderr)
        return
    keys: dict[str, None] = dict.fromkeys(query.keys)
    if not keys:
        for row in rows:
            keys.update(dict.fromkeys(row["record"]))
    headers = ["EXEC", *keys]
    trial_ids = {row["trial"] for row in rows}
    table = [[_origin(row, trial_ids)] + [row["record"].get(k) for k in keys] for row in rows]
    if query.form == "csv":
        render.print_csv(headers, table)
        return
    print(render.table(headers, table))


def _nothing_shown(query: StatsQuery) -> str:
    if query.where:
        where = " ".join(f"--where {w!r}" for w in query.where)
        return f"no record matches {where}; `kleio stats {query.trial}` shows them all"
    return "no statistics logged"


def _selected(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: record.get(k) for k in keys} if keys else record


def _effective_stats(query: StatsQuery) -> None:
    """The effective history's statistics, cut into columns by the daemon a page at a time
    and formatted here a page at a time meanwhile; the finished lines are sorted."""
    where = statistics.conditions(list(query.where))
    formatted = (
        None if query.form == "csv" else columnar.Formatted(query.form == "json", query.keys)
    )
    with connect(resolve()) as client:
        segments = client.call("stats", id=query.trial, segments=True, bodies=False)
        table = statistics.paged(
            client, segments, where, None if formatted is None else formatted.add
        )
    labels, columns = table.labels, table.columns
    ranks = statistics.ranks(query.sort, labels, columns) if query.sort else None
    if query.keys:
        known = dict(zip(labels, columns, strict=True))
        columns = [known.get(k, [None] * len(table.origins)) for k in query.keys]
        labels = list(query.keys)
    if formatted is not None and query.form == "json":
        rows = formatted.json_objects(labels)
        if rows is None:
            render.print_json_array(_json_records(query, where))
        else:
            render.print_json_rows(statistics.arranged(rows, ranks))
        return
    several = len({(s["trial"], s["execution"]) for s in segments}) > 1
    origins = statistics.origin_labels(segments, table.origins) if several else []
    if formatted is None:
        if several:
            columns, labels = [origins, *columns], ["EXEC", *labels]
        render.print_csv(labels, statistics.arranged(list(zip(*columns, strict=True)), ranks))
        return
    if not table.origins:
        print(_nothing_shown(query), file=sys.stderr)
        return
    header, lines = formatted.table(labels, origins)
    render.print_lines([header, *statistics.arranged(lines, ranks)])


def _json_records(query: StatsQuery, where: list[statistics.Condition]) -> list[dict[str, Any]]:
    """The records as they are, for JSON that rows of numbers cannot write: a record may
    hold a null, a string, NaN, or lack a key (read again as records, the rare case: of a
    running trial, perhaps with records that came since).  Sorted as the table is: a
    null as a missing key."""
    with connect(resolve()) as client:
        records = statistics.matching(stored.read(client, query.trial), where)
    if query.sort:
        column = [record.get(query.sort) for record in records]
        records = statistics.arranged(records, statistics.ranks(query.sort, [query.sort], [column]))
    return [_selected(record, query.keys) for record in records] if query.keys else records


def _origin(row: dict[str, Any], trial_ids: set[str]) -> str:
    """Which execution logged a row: ``2``, ``3f2a8c1e:1`` when inherited; ``*`` superseded."""
    label = str(row["execution"])
    if len(trial_ids) > 1:
        label = f"{render.short(row['trial'])}:{label}"
    return label + ("*" if row["superseded"] else "")


def export(ids: list[str], output: str) -> None:
    target = Path(output).resolve()
    with connect(resolve(), timeout=3600) as client:
        done = client.call("export", ids=ids, path=str(target))
    print(
        f"{target}: {done['trials']} trials, {done['chunks']} chunks of records, "
        f"{done['artifacts']} artifacts",
        file=sys.stderr,
    )


def import_(path: str) -> None:
    source = Path(path).resolve()
    if not source.is_file():
        raise CliError(f"kleio: no file {source}", EXIT_USAGE)
    with connect(resolve(), timeout=3600) as client:
        done = client.call("import", path=str(source))
    print(
        f"imported {done['trials']} trials ({done['chunks']} chunks of records, "
        f"{done['artifacts']} artifacts); {done['skipped']} already here",
        file=sys.stderr,
    )
