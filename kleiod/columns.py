"""Statistics a page of segments at a time: cut into columns (how `kleio stats` reads),
or as stored bodies (how `kleio plot`, `kleio compare` and the Python API read).

A reader first asks for the effective history's segments without their bodies
(:func:`kleiod.history.statistic_segments`), then for pages of them, two pages in
flight (kleio_client.segments): for `kleio stats` the daemon reads, unpacks and cuts
one page on its core while the CLI formats the one before on its own.  Each page is
read from storage when asked for: a history of any length costs the daemon one page of
memory, and a request holds it tens of milliseconds at most.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from kleio_client import protocol
from kleio_client.protocol import Condition
from kleiod.errors import BadRequest
from kleiod.storage.base import POSITION_STRIDE, Storage


def page(
    storage: Storage, segments: list[dict[str, Any]], where: list[Condition]
) -> dict[str, Any]:
    """The matching records of ``segments`` as columns: ``labels`` (keys in order of first
    appearance), ``columns`` of values (None where a record lacks the key) and, for each
    segment, how many of the rows are its own (``counts``).  A list of numbers is packed
    and unpacked at C speed, faster than an ``array``'s bytes once its types are checked."""
    wanted = _checked(segments)
    bodies = _bodies(storage, wanted)
    labels: list[str] = []
    columns: list[list[Any]] = []
    counts: list[int] = []
    for trial, position, start, end in wanted:
        records = protocol.chunk_records(bodies[(trial, position)], start, end, use_list=False)
        if where:
            records = [r for r in records if all(c.holds(r) for c in where)]
        _extend(labels, columns, sum(counts), records)
        counts.append(len(records))
    return {"labels": labels, "columns": columns, "counts": counts}


def bodies(storage: Storage, segments: list[dict[str, Any]]) -> list[bytes]:
    """The stored bodies of ``segments``, in their order (for a reader that wants the
    records themselves, a page at a time)."""
    wanted = _checked(segments)
    found = _bodies(storage, wanted)
    return [found[(trial, position)] for trial, position, _, _ in wanted]


def _checked(segments: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    if not 0 < len(segments) <= protocol.MAX_PAGE_SEGMENTS:
        raise BadRequest(f"a page holds 1 to {protocol.MAX_PAGE_SEGMENTS} segments")
    return [_segment(s) for s in segments]


def _segment(segment: dict[str, Any]) -> tuple[str, int, int, int]:
    """A segment's trial, position, start and end, or BadRequest."""
    try:
        trial, position = str(segment["trial"]), int(segment["position"])
        start, end = int(segment["start"]), int(segment["end"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(
            f"a segment is a map of trial, position, start and end: {exc!r:.80}"
        ) from None
    if position % POSITION_STRIDE or not 0 <= start <= end <= POSITION_STRIDE:
        raise BadRequest(
            f"not a segment of stored statistics: position {position}, records "
            f"{start} to {end}; ask `stats` with `segments` for them"
        )
    return trial, position, start, end


def _bodies(
    storage: Storage, wanted: list[tuple[str, int, int, int]]
) -> dict[tuple[str, int], bytes]:
    positions: dict[str, set[int]] = {}
    for trial, position, _, _ in wanted:
        positions.setdefault(trial, set()).add(position)
    bodies = {
        (trial, chunk["position"]): chunk["body"]
        for trial, chosen in positions.items()
        for chunk in storage.read_chunks(trial, [protocol.STATISTIC], positions=sorted(chosen))
    }
    missing = [(t, p) for t, p, _, _ in wanted if (t, p) not in bodies]
    if missing:
        trial, position = missing[0]
        raise BadRequest(
            f"no statistics of trial {trial[:12]!r} are stored at position "
            f"{position}; ask `stats` with `segments` for them"
        )
    return bodies


def _extend(
    labels: list[str], columns: list[list[Any]], rows: int, records: list[dict[str, Any]]
) -> None:
    """Append the records' rows (``rows`` so far); a new key's column holds None for the
    rows before.  Cut as soon as unpacked: the dicts are read while still in the cache."""
    if not records:
        return
    cut = _uniform(records) or _sparse(records)
    for key in cut:
        if key not in labels:
            labels.append(key)
            columns.append([None] * rows)
    for label, column in zip(labels, columns, strict=True):
        column.extend(cut[label] if label in cut else [None] * len(records))


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
    return {key: [record.get(key) for record in records] for key in protocol.record_keys(records)}
