"""Statistics as the CLI reads them: stored chunks unpacked here, sorted by any key.

The daemon sends the effective history as segments of stored chunks (packed
``[kind, record]`` pairs with the slice that counts); unpacking them here is one C call
per chunk, not a dict per record on each side of a socket.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

import msgpack

from kleio_cli.capture.configuration import typed
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client.journal import Condition
from kleio_client.values import ABSENT, sort_rank

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
class Table:
    """Records cut into columns, in storage order: the keys of all records (in order of
    first appearance), a column of values for each (None where a record lacks the key),
    and for each row the index of its segment."""

    labels: list[str] = field(default_factory=list)
    columns: list[list[Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)

    def extend(self, records: list[dict[str, Any]], origin: int) -> None:
        """Append the records' rows; a new key's column holds None for the rows before."""
        if not records:
            return
        cut = _uniform(records) or _sparse(records)
        for key in cut:
            if key not in self.labels:
                self.labels.append(key)
                self.columns.append([None] * len(self.origins))
        for label, column in zip(self.labels, self.columns, strict=True):
            column.extend(cut[label] if label in cut else [None] * len(records))
        self.origins.extend([origin] * len(records))


def tabulated(segments: list[dict[str, Any]], where: list[Condition]) -> Table:
    """The records of the segments that match ``where``, as columns. Each segment is cut
    as soon as it is unpacked: its dicts are freed before the next segment's are made,
    and are read while still in the cache (twice as fast as cutting a million at once)."""
    table = Table()
    for index, segment in enumerate(segments):
        table.extend(_matching(_records(segment), where), index)
    return table


def _records(segment: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = msgpack.unpackb(segment["body"], raw=False, strict_map_key=False,
                            use_list=False)[segment["start"]:segment["end"]]
    return list(map(itemgetter(1), pairs))


def _uniform(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The columns when every record has the first one's keys and no other (the usual
    case: a column is one C call), else nothing."""
    keys = list(records[0])
    if sum(map(len, records)) != len(keys) * len(records):
        return {}
    try:  # with as many keys in all, a record with another key lacks one of these
        return {key: list(map(itemgetter(key), records)) for key in keys}
    except KeyError:
        return {}


def _sparse(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The columns of records of several shapes, keys in order of first appearance."""
    keys: dict[str, None] = {}
    for record in records:
        if not keys.keys() >= record.keys():
            keys.update(dict.fromkeys(record))
    return {key: [record.get(key) for record in records] for key in keys}


def ranks(key: str, labels: list[str], columns: list[list[Any]]) -> list[Any]:
    """What sorts each row by ``key``: numbers by value, then strings, then NaN, then other
    values, then rows without the key."""
    if key not in labels:
        raise CliError(f"kleio: no record has the key {key!r}; keys: "
                       f"{', '.join(sorted(labels))}", EXIT_USAGE)
    values = columns[labels.index(key)]
    kinds = set(map(type, values))
    if kinds <= {int, float} and not (float in kinds and any(map(math.isnan, values))):
        return values  # the usual case: compared at C speed
    if kinds == {str}:
        return values
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
    names = [str(s["execution"]) if s["trial"] == own else f"{s['trial'][:8]}:{s['execution']}"
             for s in segments]
    return [names[i] for i in origins]


_CONDITION = re.compile(r"^([^<>=!]+)(<=|>=|!=|==|=|<|>)(.*)$")
_OPERATORS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def conditions(expressions: list[str]) -> list[Condition]:
    parsed = []
    for text in expressions:
        match = _CONDITION.match(text)
        if not match or not match.group(1).strip():
            raise CliError(f"kleio: --where takes KEY=VALUE, KEY!=VALUE, KEY<VALUE, KEY<=VALUE, "
                           f"KEY>VALUE or KEY>=VALUE; got {text!r}", EXIT_USAGE)
        key, op, value = match.groups()
        parsed.append(Condition(key.strip(), _OPERATORS[op], typed(value.strip())))
    return parsed


def _matching(records: list[dict[str, Any]], where: list[Condition]) -> list[dict[str, Any]]:
    if not where:
        return records
    return [record for record in records if all(c.holds(record) for c in where)]
