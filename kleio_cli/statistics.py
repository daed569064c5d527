"""Statistics as the CLI reads them: stored chunks unpacked here, sorted by any key.

The daemon sends the effective history as segments of stored chunks (packed
``[kind, record]`` pairs with the slice that counts); unpacking them here is one C call
per chunk, not a dict per record on each side of a socket.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import msgpack

from kleio_cli.capture.configuration import typed
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client.journal import Condition
from kleio_client.values import ABSENT, sort_rank


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


def order_by(key: str, labels: list[str], columns: list[list[Any]]) -> list[int]:
    """The rows' order sorted by ``key`` (stable): numbers by value, then strings, then NaN,
    then other values, then rows without the key."""
    if key not in labels:
        raise CliError(f"kleio: no record has the key {key!r}; keys: "
                       f"{', '.join(sorted(labels))}", EXIT_USAGE)
    values = columns[labels.index(key)]
    kinds = set(map(type, values))
    if kinds <= {int, float} and not (float in kinds and any(map(math.isnan, values))):
        rank: Callable[[int], Any] = values.__getitem__  # the usual case, at C speed
    elif kinds == {str}:
        rank = values.__getitem__
    else:
        # columns hold None where a record lacks the key: it sorts as absent
        rank = [sort_rank(ABSENT if v is None else v) for v in values].__getitem__
    return sorted(range(len(values)), key=rank)


def columns(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The keys of all records (in order of first appearance) and a column of values for
    each (None where a record lacks the key)."""
    keys: dict[str, None] = {}
    shapes = set(map(tuple, records))
    for record in records if len(shapes) > 1 else records[:1]:
        if len(keys) < len(record) or not keys.keys() >= record.keys():
            keys.update(dict.fromkeys(record))
    if len(shapes) == 1:
        return list(keys), [list(map(itemgetter(k), records)) for k in keys]
    return list(keys), [[record.get(k) for record in records] for k in keys]


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


def matching(records: list[dict[str, Any]], origins: list[int], where: list[Condition]
             ) -> tuple[list[dict[str, Any]], list[int]]:
    if not where:
        return records, origins
    keep = [i for i, record in enumerate(records) if all(c.holds(record) for c in where)]
    return list(map(records.__getitem__, keep)), list(map(origins.__getitem__, keep))
