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
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(padded(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def display_width(text: str) -> int:
    """The columns ``text`` takes in a terminal: 2 for each wide character (``損失`` takes
    4), 0 for a combining one."""
    if text.isascii():
        return len(text)
    from wcwidth import wcswidth

    width = wcswidth(text)
    return width if width >= 0 else len(text)  # a control character: as len counts


def padded(text: str, width: int) -> str:
    """``text`` and spaces, ``width`` columns in all (``str.ljust`` counts characters)."""
    return text + " " * (width - display_width(text))


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


def landmark(keys: dict[str, Any] | None) -> str | None:
    """A position of a history in the user's terms, from the keys of the record there:
    ``after epoch=3 step=400``, ``after epoch=3 (checkpoint.pt)`` for an artifact."""
    if keys is None:
        return None
    shown = [
        f"{key}={cell(value)}"
        for key, value in keys.items()
        if key != "filename"
        and isinstance(value, (int, float, str))
        and len(str(value)) <= LANDMARK_VALUE
    ][:LANDMARK_KEYS]
    text = " ".join(shown) or "a record"
    if isinstance(keys.get("filename"), str):
        text += f" ({keys['filename']})"
    return f"after {text}"


LANDMARK_KEYS = 4  # keys shown of the record at a position
LANDMARK_VALUE = 40  # characters of a value shown there


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


def json_text(value: Any, **options: Any) -> str:
    """Strict JSON, which every parser reads (jq, JavaScript): NaN and infinities, which
    JSON has no words for, are written null; bytes as text."""
    try:  # the usual value has no NaN: one pass of the C encoder
        return json.dumps(value, allow_nan=False, ensure_ascii=False, default=_jsonable, **options)
    except ValueError:
        return json.dumps(
            finite(value), allow_nan=False, ensure_ascii=False, default=_jsonable, **options
        )


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, made None."""
    kind = value.__class__
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k: finite(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        if all(v.__class__ is int or v.__class__ is str or v is None for v in value):
            return value  # a column of steps or names: as it is (fast)
        return [finite(v) for v in value]
    return value


def print_json(value: Any) -> None:
    """Indented JSON; a list prints one element a line (json's C encoder: fast on 1M rows)."""
    if isinstance(value, list):
        write = sys.stdout.write
        write("[")
        for index, item in enumerate(value):
            write(",\n  " if index else "\n  ")
            write(json_text(item))
        write("\n]\n" if value else "]\n")
        return
    sys.stdout.write(json_text(value, indent=2))
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
    sys.stdout.write(json_text(values))
    sys.stdout.write("\n")


def print_json_rows(rows: Sequence[str]) -> None:
    """JSON objects' texts as a JSON array, one a line."""
    sys.stdout.write("[\n  ")
    _write_joined(",\n  ", rows)
    sys.stdout.write("\n]\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float):  # a float subclass (numpy's) that is not finite
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
