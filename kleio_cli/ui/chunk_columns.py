"""Stored statistics chunks decoded straight into numeric columns, for charts.

A stored chunk is a packed list of ``[kind, record]`` pairs (kleio_client.protocol).
Unpacking it makes a dict per record, about 1.5 µs each: two seconds for a
million-point curve.  But a training loop logs the same keys with the same types
record after record, so a chunk is mostly *runs* of records of one byte layout: the
same kind, map header, keys and value tags, with only the values' bytes differing
(an integer step changes its width at 128, 256 and 65536, so a run ends there).  A run
is a 2-D byte array, and each value a column of it that numpy reads in place.

:func:`chunk` reads one record's layout in Python, finds how many records follow with
that layout (checked a growing window at a time, so a short run costs little), and
goes on from the first that differs.  A chunk whose records are not made of numbers
and nils (a text, a list, a boolean), or whose layout changes too often, is unpacked by
msgpack instead, as every other reader does: the columns are the same either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kleio_client import protocol

MAX_RUNS = 64  # runs in a chunk before msgpack unpacks it instead
FIRST_WINDOW = 256  # records checked at first for a run; four times more each time

# A value's tag: its payload's size and numpy type (big-endian, as msgpack writes it).
_PAYLOADS = {
    0xCA: ">f4",
    0xCB: ">f8",
    0xCC: "u1",
    0xCD: ">u2",
    0xCE: ">u4",
    0xCF: ">u8",
    0xD0: "i1",
    0xD1: ">i2",
    0xD2: ">i4",
    0xD3: ">i8",
}
_NIL = 0xC0
POSITIVE, NEGATIVE, NIL = "positive fixint", "negative fixint", "nil"

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Layout:
    """A record's bytes: ``size`` long; the bytes at ``fixed`` equal ``expected`` in
    every record of the run; each value is (key, offset of its tag, how it is read)."""

    size: int
    fixed: np.ndarray
    expected: np.ndarray
    values: tuple[tuple[str, int, str], ...]

    def matching(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (records as rows of bytes) have this layout."""
        found: np.ndarray = (rows[:, self.fixed] == self.expected).all(axis=1)
        for _, offset, kind in self.values:
            if kind == POSITIVE:
                found &= rows[:, offset] < 0x80
            elif kind == NEGATIVE:
                found &= rows[:, offset] >= 0xE0
        return found

    def columns(self, rows: np.ndarray) -> Columns:
        """The values of ``rows`` (all of this layout) as float columns."""
        found: Columns = {}
        for key, offset, kind in self.values:
            if kind == POSITIVE:
                found[key] = rows[:, offset].astype(float)
            elif kind == NEGATIVE:
                found[key] = rows[:, offset].view(np.int8).astype(float)
            elif kind == NIL:
                found[key] = np.full(len(rows), math.nan)
            else:
                width = np.dtype(kind).itemsize
                payload = np.ascontiguousarray(rows[:, offset + 1 : offset + 1 + width])
                found[key] = payload.view(kind)[:, 0].astype(float)
        return found


def chunk(body: bytes, start: int, end: int) -> tuple[list[str], Columns]:
    """The records ``start`` to ``end`` of a stored chunk: their keys in order of first
    appearance and a float column for each (NaN where a record has no finite number)."""
    found = _runs(body, start, end)
    if found is None:
        return _unpacked(body, start, end)
    labels, columns = found
    for column in columns.values():
        column[~np.isfinite(column)] = math.nan
    return labels, columns


def _runs(body: bytes, start: int, end: int) -> tuple[list[str], Columns] | None:
    view = np.frombuffer(body, dtype=np.uint8)
    header = _array_header(body)
    if header is None or header[0] < end:
        return None
    _, at = header
    labels: list[str] = []
    columns: Columns = {}
    index = runs = 0
    while index < end:
        layout = _layout(body, at)
        runs += 1
        if layout is None or runs > MAX_RUNS:
            return None
        count = _run_length(view, at, layout, end - index)
        low, high = max(start, index), index + count
        if low < high:
            rows = view[at : at + count * layout.size].reshape(count, layout.size)
            for key, values in layout.columns(rows[low - index :]).items():
                if key not in columns:
                    labels.append(key)
                    columns[key] = np.full(end - start, math.nan)
                columns[key][low - start : high - start] = values
        index, at = high, at + count * layout.size
    return labels, columns


def _run_length(view: np.ndarray, at: int, layout: Layout, most: int) -> int:
    """How many records from byte ``at`` on (``most`` at most) have ``layout``."""
    count, window = 0, FIRST_WINDOW
    while count < most:
        begin = at + count * layout.size
        size = min(window, most - count, (len(view) - begin) // layout.size)
        if size <= 0:
            break
        rows = view[begin : begin + size * layout.size].reshape(size, layout.size)
        matching = layout.matching(rows)
        if not matching.all():
            return count + int(np.argmin(matching))
        count, window = count + size, window * 4
    return count


def _array_header(body: bytes) -> tuple[int, int] | None:
    """The number of records of a packed list and where the first begins."""
    if not body:
        return None
    head = body[0]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F, 1
    if head == 0xDC:
        return int.from_bytes(body[1:3], "big"), 3
    if head == 0xDD:
        return int.from_bytes(body[1:5], "big"), 5
    return None


def _layout(body: bytes, at: int) -> Layout | None:
    """The layout of the ``[kind, record]`` pair at ``at``, or None when it holds
    anything but numbers and nils (or is not such a pair)."""
    if at >= len(body) or body[at] != 0x92:
        return None
    kind = _text(body, at + 1)
    if kind is None:
        return None
    entries, place = _map_header(body, kind[1])
    values: list[tuple[str, int, str]] = []
    free: set[int] = set()
    for _ in range(entries):
        key = _text(body, place)
        if key is None or key[1] >= len(body):
            return None
        place = key[1]
        tag = body[place]
        if tag < 0x80 or tag >= 0xE0:
            values.append((key[0], place - at, POSITIVE if tag < 0x80 else NEGATIVE))
            free.add(place - at)
            place += 1
        elif tag == _NIL:
            values.append((key[0], place - at, NIL))
            place += 1
        elif tag in _PAYLOADS:
            width = np.dtype(_PAYLOADS[tag]).itemsize
            values.append((key[0], place - at, _PAYLOADS[tag]))
            free.update(range(place - at + 1, place - at + 1 + width))
            place += 1 + width
        else:
            return None
    if entries < 0 or place > len(body) or len({key for key, _, _ in values}) < len(values):
        return None
    size = place - at
    fixed = np.array([i for i in range(size) if i not in free], dtype=np.intp)
    expected = np.frombuffer(body, dtype=np.uint8, count=size, offset=at)[fixed]
    return Layout(size, fixed, expected, tuple(values))


def _map_header(body: bytes, at: int) -> tuple[int, int]:
    """A map's number of entries and where its first begins (-1 entries: not a map)."""
    if at >= len(body):
        return -1, at
    head = body[at]
    if 0x80 <= head <= 0x8F:
        return head & 0x0F, at + 1
    if head == 0xDE:
        return int.from_bytes(body[at + 1 : at + 3], "big"), at + 3
    return -1, at


def _text(body: bytes, at: int) -> tuple[str, int] | None:
    """The string at ``at`` and where what follows begins, or None."""
    if at >= len(body):
        return None
    head = body[at]
    if 0xA0 <= head <= 0xBF:
        length, begin = head & 0x1F, at + 1
    elif head in (0xD9, 0xDA, 0xDB):
        width = {0xD9: 1, 0xDA: 2, 0xDB: 4}[head]
        length, begin = int.from_bytes(body[at + 1 : at + 1 + width], "big"), at + 1 + width
    else:
        return None
    if begin + length > len(body):
        return None
    try:
        return body[begin : begin + length].decode(), begin + length
    except UnicodeDecodeError:
        return None


def _unpacked(body: bytes, start: int, end: int) -> tuple[list[str], Columns]:
    """The same columns, by msgpack: for chunks of texts, lists or changing layouts."""
    from kleio_cli.ui.downsample import numbers

    records = protocol.chunk_records(body, start, end, use_list=False)
    keys: dict[str, None] = {}
    for record in records:
        if not keys.keys() >= record.keys():
            keys.update(dict.fromkeys(record))
    return list(keys), {key: numbers([r.get(key) for r in records]) for key in keys}
