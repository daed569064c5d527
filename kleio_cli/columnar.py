"""Rows by the million: the lines of a table or of a JSON array, made a column at a time.

Each column is checked and formatted in one C-level pass (each distinct value once in a
column of few), a page of rows at a time as the daemon sends them, and each row is made
by one ``%`` call. The lines come in the columns'
order, the order in which their values lie in memory: to sort rows, sort these lines,
not the values (formatting values read in sorted order, from all over memory, takes twice
as long).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from kleio_cli.render import cell, display_width, padded

_SAMPLE, _FEW = 1024, 32  # a column of at most _FEW values in its first _SAMPLE rows


@dataclass(frozen=True)
class _Column:
    """A column as one ``%`` conversion takes it: ``d`` ints, ``s`` texts, ``r`` reprs."""

    conversion: str
    values: Sequence[Any]
    width: int = 0


class Formatted:
    """Columns formatted a page at a time, as the pages come (:meth:`add`), for an aligned
    table (``json=False``) or for JSON objects; then made into lines at once."""

    def __init__(self, json: bool, only: Collection[str] = ()) -> None:
        self._form = _json_column if json else _table_column
        self._json = json
        self._only = set(only)
        self._pages: list[tuple[int, dict[str, _Column | None]]] = []

    def add(self, labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
        rows = len(columns[0]) if columns else 0
        self._pages.append(
            (
                rows,
                {
                    label: self._form(column)
                    for label, column in zip(labels, columns, strict=True)
                    if not self._only or label in self._only
                },
            )
        )

    def table(self, labels: Sequence[str], leading: Sequence[str] = ()) -> tuple[str, list[str]]:
        """The header line and the rows' lines of the columns ``labels`` (``-`` where a
        page lacks one), after the column ``EXEC`` when ``leading`` gives its texts;
        each column but the last padded to its width."""
        columns = [self._merged(label) or _texts([]) for label in labels]
        headers = list(labels)
        if leading:
            columns.insert(0, _texts(list(leading)))
            headers.insert(0, "EXEC")
        widths = [
            max(display_width(str(h)), c.width) for h, c in zip(headers, columns, strict=True)
        ]
        header = "  ".join(map(padded, map(str, headers), widths)).rstrip()
        # `%-Ns` pads by characters: a column with wide characters is padded here instead.
        columns = [
            _padded(c, w) if c.conversion == "s" and not _ascii(c.values) else c
            for c, w in zip(columns[:-1], widths[:-1], strict=True)
        ] + columns[-1:]
        specs = [
            f"%-{w}{c.conversion}" if c.width >= 0 else "%s"
            for w, c in zip(widths[:-1], columns, strict=False)
        ]
        specs += [f"%{c.conversion}" for c in columns[-1:]]
        return header, _rows("  ".join(specs), columns)

    def json_objects(self, labels: Sequence[str]) -> list[str] | None:
        """Each row as a JSON object; None unless every value is a finite number (no
        null, no missing key, no NaN): such records are written as they are."""
        cut = [self._merged(label) for label in labels]
        columns = [c for c in cut if c is not None]
        if not labels or len(columns) < len(cut):
            return None
        keys = [json.dumps(label, ensure_ascii=False).replace("%", "%%") for label in labels]
        fields = [f"{key}: %{c.conversion}" for key, c in zip(keys, columns, strict=True)]
        return _rows("{" + ", ".join(fields) + "}", columns)

    def _merged(self, label: str) -> _Column | None:
        """A column's pages as one column (``-`` in a table where a page lacks it); None
        for JSON that rows of numbers cannot write."""
        parts = [cut.get(label) for _, cut in self._pages]
        if self._json and None in parts:
            return None
        present = [
            p if p is not None else _Column("s", ["-"] * rows, 1)
            for p, (rows, _) in zip(parts, self._pages, strict=True)
        ]
        if not present:
            return None
        if len({p.conversion for p in present}) == 1:
            values = [v for p in present for v in p.values]
            return _Column(present[0].conversion, values, max(p.width for p in present))
        return _texts([t for p in present for t in _as_texts(p)])


def _as_texts(column: _Column) -> Sequence[str]:
    """A column's texts, as its ``%`` conversion makes them."""
    if column.conversion == "s":
        return column.values
    return list(map(("%" + column.conversion).__mod__, column.values))


def _texts(texts: list[str]) -> _Column:
    return _Column("s", texts, _width(texts))


def _width(texts: Sequence[str]) -> int:
    """The widest text's columns on a terminal (``len`` for ASCII, at C speed)."""
    if _ascii(texts):
        return max(map(len, texts), default=0)
    return max(map(display_width, texts), default=0)


def _ascii(texts: Sequence[str]) -> bool:
    return all(map(str.isascii, texts))


def _padded(column: _Column, width: int) -> _Column:
    """A column of texts padded to ``width`` terminal columns (width -1: no more padding)."""
    return _Column("s", [padded(t, width) for t in column.values], -1)


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
    return _Column("s", texts, _width(texts))


def _json_column(column: Sequence[Any]) -> _Column | None:
    kinds = set(map(type, column))
    if kinds == {int}:
        return _Column("d", column)
    if not kinds <= {int, float} or not all(map(math.isfinite, column)):
        return None
    if kinds != {float}:
        return _Column("r", column)
    # formatted now, as the page comes, rather than in the rows' template after the last
    return _Column("s", _repeated(column, float.__repr__) or list(map(float.__repr__, column)))


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
