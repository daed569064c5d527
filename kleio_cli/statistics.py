"""Statistics as the CLI reads them, sorted by any key.

`kleio stats` has the daemon cut the effective history into columns a page at a time
(:func:`paged`, see kleiod.columns), formatting each page while the daemon cuts the
next.  `kleio plot` and `kleio compare` take the records themselves: the segments of
stored chunks (packed ``[kind, record]`` pairs with the slice that counts), read a page
at a time too (kleio_client.segments) and unpacked here in one C call per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from kleio_cli.capture.configuration import typed
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client import segments as stored
from kleio_client.control import ControlClient
from kleio_client.protocol import ABSENT, Condition, sort_rank
from kleio_client.values import orders_by_itself

T = TypeVar("T")


def unpacked(segments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of the segments, in order, and for each the index of its segment."""
    records: list[dict[str, Any]] = []
    origins: list[int] = []
    for index, segment in enumerate(segments):
        chunk = _records(segment)
        records.extend(chunk)
        origins.extend([index] * len(chunk))
    return records, origins


def matching(segments: list[dict[str, Any]], where: list[Condition]) -> list[dict[str, Any]]:
    """The records of the segments that match ``where``, in order."""
    return [record for segment in segments for record in _matching(_records(segment), where)]


@dataclass
class Columns:
    """Records as columns, in storage order: the keys of all records (in order of first
    appearance), a column of values for each (None where a record lacks the key), and
    for each row the index of its segment."""

    labels: list[str] = field(default_factory=list)
    columns: list[list[Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)

    def extend(
        self, labels: list[str], columns: list[list[Any]], counts: list[int], first: int
    ) -> None:
        """Append a page's rows: its segments' counts, the first being segment ``first``."""
        rows = len(self.origins)
        for label in labels:
            if label not in self.labels:
                self.labels.append(label)
                self.columns.append([None] * rows)
        page = dict(zip(labels, columns, strict=True))
        added = sum(counts)
        for label, column in zip(self.labels, self.columns, strict=True):
            column.extend(page[label] if label in page else [None] * added)
        for index, count in enumerate(counts, first):
            self.origins.extend([index] * count)


Page = Callable[[list[str], list[list[Any]]], None]


def paged(
    client: ControlClient,
    segments: list[dict[str, Any]],
    where: list[Condition],
    on_page: Page | None = None,
) -> Columns:
    """The records of the segments that match ``where``, as columns cut by the daemon a
    page at a time; ``on_page`` sees each page's labels and columns as it comes (to format
    them while the daemon cuts the next)."""
    table = Columns()

    def take(first: int, _page: list[dict[str, Any]], answer: dict[str, Any]) -> None:
        if on_page is not None and answer["labels"]:
            on_page(answer["labels"], answer["columns"])
        table.extend(answer["labels"], answer["columns"], answer["counts"], first)

    stored.each_page(
        client, segments, "columns", take, where=[[c.key, c.op, c.value] for c in where]
    )
    return table


def _records(segment: dict[str, Any]) -> list[dict[str, Any]]:
    return stored.records(segment["body"], segment["start"], segment["end"], use_list=False)


def ranks(key: str, labels: list[str], columns: list[list[Any]]) -> list[Any]:
    """What sorts each row by ``key``: numbers by value, then strings, then NaN, then other
    values, then rows without the key."""
    if key not in labels:
        raise CliError(
            f"kleio: no record has the key {key!r}; keys: {', '.join(sorted(labels))}", EXIT_USAGE
        )
    values = columns[labels.index(key)]
    if orders_by_itself(values):
        return values  # the usual case: compared at C speed
    # columns hold None where a record lacks the key: it sorts as absent
    return [sort_rank(ABSENT if v is None else v) for v in values]


def arranged(items: list[T], ranks: list[Any] | None) -> list[T]:
    """The items sorted by the rank at their index (stable); as they are without ranks."""
    if ranks is None:
        return items
    # The key function hands out the ranks in turn: CPython computes each key once, in list
    # order, before it sorts. The items are sorted themselves: no million-index permutation
    # to apply after, each index a read from anywhere in memory (twice as fast).
    items = list(items)
    items.sort(key=partial(next, iter(ranks)))
    return items


def origin_labels(segments: list[dict[str, Any]], origins: list[int]) -> list[str]:
    """Which execution logged each row: ``2``, or ``3f2a8c1e:1`` when inherited."""
    own = segments[-1]["trial"] if segments else None
    names = [
        str(s["execution"]) if s["trial"] == own else f"{s['trial'][:8]}:{s['execution']}"
        for s in segments
    ]
    return [names[i] for i in origins]


_CONDITION = re.compile(r"^([^<>=!]+)(<=|>=|!=|==|=|<|>)(.*)$")
_OPERATOR_CHARS = ("<", ">", "=", "!")
_OPERATORS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def conditions(expressions: list[str]) -> list[Condition]:
    parsed = []
    for text in expressions:
        match = _CONDITION.match(text)
        # `epoch>>3`, `lr=<0.1`: an operator doubled or misordered is no value.
        if not match or not match.group(1).strip() or match.group(3).startswith(_OPERATOR_CHARS):
            raise CliError(
                f"kleio: --where takes KEY=VALUE, KEY!=VALUE, KEY<VALUE, KEY<=VALUE, "
                f"KEY>VALUE or KEY>=VALUE; got {text!r}",
                EXIT_USAGE,
            )
        key, op, value = match.groups()
        parsed.append(Condition(key.strip(), _OPERATORS[op], _carried(text, value.strip())))
    return parsed


def _carried(text: str, value: str) -> Any:
    """The typed value of a condition, as the daemon can be sent it: an int past 64 bits
    (no record holds one) compares as a float."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise CliError(f"kleio: --where {text!r} is not valid text", EXIT_USAGE) from None
    typed_value = typed(value)
    if isinstance(typed_value, int) and not -(2**63) <= typed_value < 2**64:
        return float(typed_value)
    return typed_value


def _matching(records: list[dict[str, Any]], where: list[Condition]) -> list[dict[str, Any]]:
    if not where:
        return records
    return [record for record in records if all(c.holds(record) for c in where)]
