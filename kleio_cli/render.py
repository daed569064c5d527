"""How the CLI shows things: aligned tables, times, ids, and JSON."""

from __future__ import annotations

import datetime
import json
import math
import shlex
import sys
from collections.abc import Iterable, Sequence
from typing import Any

SHORT_ID = 8
_SLICE = 4096  # lines joined and written at once


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def print_lines(lines: Sequence[str]) -> None:
    """The lines, each ended by a newline."""
    _write_joined("\n", lines)
    sys.stdout.write("\n")


def _write_joined(separator: str, texts: Sequence[str]) -> None:
    """``separator.join(texts)``, written a slice of texts at a time: each slice is joined
    and encoded in the memory the last one freed, where one string of a million lines
    would take fresh pages twice its size (and twice the time)."""
    write = sys.stdout.write
    for start in range(0, len(texts), _SLICE):
        if start:
            write(separator)
        write(separator.join(texts[start : start + _SLICE]))


def cell(value: Any) -> str:
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


def print_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Rows as CSV with a header line; a missing value is an empty field."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)


def print_json_array(values: list[Any]) -> None:
    """A long list as JSON in one call of the C encoder (one line: a million records in
    about a second, where one call per element takes four)."""
    sys.stdout.write(json.dumps(values, ensure_ascii=False, default=_jsonable))
    sys.stdout.write("\n")


def print_json_rows(rows: Sequence[str]) -> None:
    """JSON objects' texts as a JSON array, one a line."""
    sys.stdout.write("[\n  ")
    _write_joined(",\n  ", rows)
    sys.stdout.write("\n]\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
