"""Statistics as the CLI reads them: stored chunks unpacked here, sorted by any key.

The daemon sends the effective history as segments of stored chunks (packed
``[kind, record]`` pairs with the slice that counts); unpacking them here is one C call
per chunk, not a dict per record on each side of a socket.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import msgpack


def unpacked(segments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of the segments, in order, and for each the index of its segment."""
    records: list[dict[str, Any]] = []
    origins: list[int] = []
    for index, segment in enumerate(segments):
        pairs = msgpack.unpackb(segment["body"], raw=False, strict_map_key=False,
                                use_list=False)[segment["start"]:segment["end"]]
        records.extend(map(itemgetter(1), pairs))
        origins.extend([index] * len(pairs))
    return records, origins


def sorted_by(key: str, records: list[dict[str, Any]], origins: list[int]
              ) -> tuple[list[dict[str, Any]], list[int]]:
    """Records sorted by ``key`` (stable): numbers by value, then strings, then NaN, then
    other values, then records without the key."""
    if records and not any(key in record for record in records):
        known = sorted({k for record in records for k in record})
        from kleio_cli.errors import EXIT_USAGE, CliError

        raise CliError(f"kleio: no record has the key {key!r}; keys: {', '.join(known)}",
                       EXIT_USAGE)
    order = sorted(range(len(records)), key=_sort_key(key, records))
    return [records[i] for i in order], [origins[i] for i in order]


def _sort_key(key: str, records: list[dict[str, Any]]) -> Callable[[int], Any]:
    values = [record.get(key, _ABSENT) for record in records]
    kinds = set(map(type, values))
    if kinds <= {int, float} and not any(v != v for v in values):  # the fast, usual case
        return values.__getitem__
    if kinds == {str}:
        return values.__getitem__
    ranked = [_rank(v) for v in values]
    return ranked.__getitem__


_ABSENT = object()


def _rank(value: Any) -> tuple[int, Any]:
    if value is _ABSENT:
        return (4, 0)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, float):
        return (2, 0)
    return (3, repr(value))


def origin_labels(segments: list[dict[str, Any]], origins: list[int]) -> list[str]:
    """Which execution logged each row: ``2``, or ``3f2a8c1e:1`` when inherited."""
    own = segments[-1]["trial"] if segments else None
    names = [str(s["execution"]) if s["trial"] == own else f"{s['trial'][:8]}:{s['execution']}"
             for s in segments]
    return [names[i] for i in origins]
