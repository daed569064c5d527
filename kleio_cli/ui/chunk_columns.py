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

from kleio_cli.ui.downsample import numbers
from kleio_client import protocol

MAX_RUNS = 64  # runs in a chunk before msgpack unpacks it instead
FIRST_WINDOW = 4096  # records checked at first for a run; four times more each time

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
_TEXT_WIDTHS = {0xD9: 1, 0xDA: 2, 0xDB: 4}  # str8, str16, str32: the length's bytes
POSITIVE, NEGATIVE, NIL = "positive fixint", "negative fixint", "nil"
# How a value is read: its numpy type and how far past its tag (a fixint is its tag).
_FIXINTS = {POSITIVE: ("u1", 0), NEGATIVE: ("i1", 0)}

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Layout:
    """A record's bytes: ``size`` long; masked by ``mask`` (0 where a value's bytes are),
    equal to ``expected`` in every record of the run; each value is (key, offset of its
    tag, how it is read)."""

    size: int
    mask: np.ndarray
    expected: np.ndarray
    values: tuple[tuple[str, int, str], ...]

    def first_other(self, rows: np.ndarray) -> int | None:
        """The first of ``rows`` (records as rows of bytes) not of this layout, or None.
        Compared as one flat run of bytes, which numpy does at memory speed (a row at a
        time, ``all(axis=1)``, is five times slower)."""
        differing = ((rows & self.mask) != self.expected).ravel()
        first = int(differing.argmax()) // self.size if differing.any() else len(rows)
        for _, offset, kind in self.values:
            if kind in (POSITIVE, NEGATIVE):
                wrong = (
                    rows[:first, offset] >= 0x80
                    if kind == POSITIVE
                    else rows[:first, offset] < 0xE0
                )
                if wrong.any():
                    first = int(wrong.argmax())
        return None if first == len(rows) else first

    def put(self, sink: Sink, body: bytes, at: int, count: int, first: int) -> None:
        """The values of the ``count`` records of this layout from byte ``at`` on, into
        ``sink`` from its row ``first``: each read in place, a stride apart."""
        for key, offset, kind in self.values:
            if kind == NIL:
                sink.put(key, first, np.full(count, math.nan))
                continue
            dtype, skip = _FIXINTS.get(kind, (kind, 1))
            values = np.ndarray(
                (count,), dtype, body, offset=at + offset + skip, strides=(self.size,)
            )
            sink.put(key, first, values)


class Sink:
    """Float columns ``rows`` long, each made (all NaN) when its key first comes."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.labels: list[str] = []
        self.columns: Columns = {}

    def put(self, key: str, first: int, values: np.ndarray) -> None:
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = np.full(self.rows, math.nan)
            self.labels.append(key)
        column[first : first + len(values)] = values

    def finished(self) -> tuple[list[str], Columns]:
        """The keys in order of first appearance and their columns, every value that is
        not a finite number NaN."""
        for column in self.columns.values():
            column[~np.isfinite(column)] = math.nan
        return self.labels, self.columns


def chunk(body: bytes, start: int, end: int) -> tuple[list[str], Columns]:
    """The records ``start`` to ``end`` of a stored chunk: their keys in order of first
    appearance and a float column for each (NaN where a record has no finite number)."""
    sink = Sink(end - start)
    put(sink, 0, body, start, end)
    return sink.finished()


def put(sink: Sink, first: int, body: bytes, start: int, end: int) -> None:
    """The records ``start`` to ``end`` of a stored chunk into ``sink`` from its row
    ``first``: run by run, or unpacked by msgpack when not made of runs."""
    runs = _runs(body, end)
    if runs is None:
        labels, columns = _unpacked(body, start, end)
        for label in labels:
            sink.put(label, first, columns[label])
        return
    for index, count, at, layout in runs:
        low = max(start, index)
        if low < index + count:
            skipped = low - index
            layout.put(sink, body, at + skipped * layout.size, count - skipped, first + low - start)


Run = tuple[int, int, int, Layout]  # first record, how many, where it begins, its layout


def _runs(body: bytes, end: int) -> list[Run] | None:
    """The runs of the chunk's first ``end`` records, or None (not numbers and nils, or
    too many runs)."""
    view = np.frombuffer(body, dtype=np.uint8)
    header = _array_header(body)
    if header is None or header[0] < end:
        return None
    at, index = header[1], 0
    runs: list[Run] = []
    while index < end:
        layout = _layout(body, at)
        if layout is None or len(runs) >= MAX_RUNS:
            return None
        count = _run_length(view, at, layout, end - index)
        runs.append((index, count, at, layout))
        index, at = index + count, at + count * layout.size
    return runs


def _run_length(view: np.ndarray, at: int, layout: Layout, most: int) -> int:
    """How many records from byte ``at`` on (``most`` at most) have ``layout``."""
    count, window = 0, FIRST_WINDOW
    while count < most:
        begin = at + count * layout.size
        size = min(window, most - count, (len(view) - begin) // layout.size)
        if size <= 0:
            break
        rows = view[begin : begin + size * layout.size].reshape(size, layout.size)
        other = layout.first_other(rows)
        if other is not None:
            return count + other
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
    mask = np.full(size, 0xFF, dtype=np.uint8)
    mask[list(free)] = 0
    expected = np.frombuffer(body, dtype=np.uint8, count=size, offset=at) & mask
    return Layout(size, mask, expected, tuple(values))


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
    elif head in _TEXT_WIDTHS:
        width = _TEXT_WIDTHS[head]
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
    records = protocol.chunk_records(body, start, end, use_list=False)
    keys = protocol.record_keys(records)
    return keys, {key: numbers([r.get(key) for r in records]) for key in keys}
