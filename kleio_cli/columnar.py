"""Rows by the million: the lines of a table or of a JSON array, made a column at a time.

Each column is checked and formatted in one C-level pass (each distinct value once in a
column of few), and each row is made by one ``%`` call. The lines come in the columns'
order, the order in which their values lie in memory: to sort rows, sort these lines,
not the values (formatting values read in sorted order, from all over memory, takes twice
as long).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kleio_cli.render import cell

_SAMPLE, _FEW = 1024, 32  # a column of at most _FEW values in its first _SAMPLE rows


@dataclass(frozen=True)
class _Column:
    """A column as one ``%`` conversion takes it: ``d`` ints, ``s`` texts, ``r`` reprs."""

    conversion: str
    values: Sequence[Any]
    width: int = 0


def table(headers: Sequence[str], columns: Sequence[Sequence[Any]]) -> tuple[str, list[str]]:
    """An aligned table's header line and its rows' lines, each column but the last padded
    to its width."""
    cut = [_table_column(column) for column in columns]
    widths = [max(len(str(h)), c.width) for h, c in zip(headers, cut, strict=True)]
    header = "  ".join(map(str.ljust, map(str, headers), widths)).rstrip()
    specs = [f"%-{w}{c.conversion}" for w, c in zip(widths[:-1], cut, strict=False)]
    specs += [f"%{c.conversion}" for c in cut[-1:]]
    return header, _rows("  ".join(specs), cut)


def json_objects(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> list[str] | None:
    """Each row as a JSON object; None unless every value is a finite number (no null, no
    missing key, no NaN): such records are written as they are."""
    cut = []
    for column in columns:
        numbers = _json_column(column)
        if numbers is None:
            return None
        cut.append(numbers)
    if not cut:
        return None
    keys = [json.dumps(label, ensure_ascii=False).replace("%", "%%") for label in labels]
    fields = [f"{key}: %{c.conversion}" for key, c in zip(keys, cut, strict=True)]
    return _rows("{" + ", ".join(fields) + "}", cut)


def _rows(template: str, columns: list[_Column]) -> list[str]:
    return list(map(template.__mod__, zip(*(c.values for c in columns), strict=True)))


def _table_column(column: Sequence[Any]) -> _Column:
    kinds = set(map(type, column))
    if kinds == {int}:  # formatted by the row's template: its width is its extremes'
        return _Column("d", column, max(len(str(min(column))), len(str(max(column)))))
    if kinds == {float} and all(map(math.isfinite, column)):
        texts = _repeated(column, "%.6g".__mod__) or list(map("%.6g".__mod__, column))
    elif kinds <= {int, str}:
        texts = list(map(str, column))
    else:
        texts = list(map(cell, column))
    return _Column("s", texts, max(map(len, texts), default=0))


def _json_column(column: Sequence[Any]) -> _Column | None:
    kinds = set(map(type, column))
    if kinds == {int}:
        return _Column("d", column)
    if not kinds <= {int, float} or not all(map(math.isfinite, column)):
        return None
    texts = _repeated(column, float.__repr__) if kinds == {float} else None
    return _Column("r", column) if texts is None else _Column("s", texts)


def _repeated(column: Sequence[float], form: Callable[[float], str]) -> list[str] | None:
    """The texts of a column of finite floats that holds few distinct values (a learning
    rate, a flag), each value formatted once; None for another column. Never with a zero:
    0.0 and -0.0 are one key, but two texts."""
    sample = set(column[:_SAMPLE])
    if len(sample) > _FEW or 0.0 in sample:
        return None
    if len(sample) == 1 and column.count(column[0]) == len(column):
        return [form(column[0])] * len(column)
    distinct = dict.fromkeys(column)
    if len(distinct) * _FEW > len(column) or 0.0 in distinct:
        return None
    texts = {value: form(value) for value in distinct}
    return list(map(texts.__getitem__, column))
