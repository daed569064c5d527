"""How the CLI shows things: aligned tables, times, ids, and JSON."""

from __future__ import annotations

import datetime
import json
import math
import shlex
import sys
from collections.abc import Sequence
from typing import Any

SHORT_ID = 8


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def columns(headers: Sequence[str], values: Sequence[Sequence[Any]]) -> str:
    """An aligned table given column by column, each column formatted at once and each
    row by one format call: the fast way to print a million rows."""
    texts = [_column_texts(column) for column in values]
    widths = [max(len(str(h)), max(map(len, t), default=0)) for h, t in zip(
        headers, texts, strict=True)]
    row = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + ("  " if len(widths) > 1 else "") \
        + "{}"
    lines = [row.format(*headers).rstrip(), *map(row.format, *texts)]
    return "\n".join(lines) + "\n"


def _column_texts(column: Sequence[Any]) -> list[str]:
    kinds = set(map(type, column))
    if kinds == {float} and all(map(math.isfinite, column)):
        return list(map("%.6g".__mod__, column))
    if kinds <= {int, str}:
        return list(map(str, column))
    return list(map(_cell, column))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def short(trial_id: str | None) -> str | None:
    return None if trial_id is None else trial_id[:SHORT_ID]


def command(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_json(value: Any) -> None:
    """Indented JSON; a list prints one element a line (json's C encoder: fast on 1M rows)."""
    if isinstance(value, list):
        write = sys.stdout.write
        write("[")
        for index, item in enumerate(value):
            write(",\n  " if index else "\n  ")
            write(json.dumps(item, ensure_ascii=False, default=_jsonable))
        write("\n]\n" if value else "]\n")
        return
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=_jsonable)
    sys.stdout.write("\n")


def print_csv(headers: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
    """Columns as CSV with a header line; a missing value is an empty field."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(zip(*columns, strict=True))


def print_json_array(values: list[Any]) -> None:
    """A long list as JSON in one call of the C encoder (one line: a million records in
    about a second, where one call per element takes four)."""
    sys.stdout.write(json.dumps(values, ensure_ascii=False, default=_jsonable))
    sys.stdout.write("\n")


def json_rows_fast(columns: Sequence[Sequence[Any]]) -> bool:
    """Whether rows of these columns can be written by :func:`print_json_rows`: finite
    numbers only, no missing value."""
    return bool(columns) and all(set(map(type, column)) <= {int, float}
                                 and all(map(math.isfinite, column)) for column in columns)


def print_json_rows(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
    """Rows of finite numbers (see :func:`json_rows_fast`) as a JSON array, one object per
    line, one format call per row: a million rows print in about a second."""
    keys = [json.dumps(label, ensure_ascii=False).replace("{", "{{").replace("}", "}}")
            for label in labels]
    row = "{{" + ", ".join(f"{key}: {{!r}}" for key in keys) + "}}"
    write = sys.stdout.write
    write("[\n  ")
    write(",\n  ".join(map(row.format, *columns)))
    write("\n]\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
