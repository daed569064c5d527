"""An ingest message's fields, checked before the daemon acts on it.

Owns what a producer may send: the counters every message carries (seqs,
executions, offsets, request numbers), which must fit what the database
stores, and a records message's packed ``[kind, body]`` pairs, checked to be
well formed without decoding a body (no dict per record on the ingest path)
and cut into storage chunks, one per run of records of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from kleio_client import protocol
from kleiod.errors import BadRequest
from kleiod.storage.base import Chunk

RECORD_KINDS = frozenset(
    {protocol.STATISTIC, protocol.ARTIFACT, protocol.OUTPUT, protocol.RESOURCE}
)

_COUNTER_LIMIT = 1 << 62  # seqs, executions, offsets: well inside SQLite's 64 bits
_MAP_HEADS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}  # fixmap, map16, map32


def counter(value: Any, name: str, low: int = 1) -> int:
    """A message's counter, or BadRequest: a value the database cannot store never reaches
    a batch, where it would fail every later commit."""
    if type(value) is not int or not low <= value < _COUNTER_LIMIT:
        raise BadRequest(f"{name} must be an integer from {low} to 2**62; got {value!r:.40}")
    return value


@dataclass(frozen=True)
class CheckedRecords:
    """A records message's packed pairs: their kinds, and where each pair starts in
    ``packed`` (one more offset: the end)."""

    packed: bytes
    kinds: list[str]
    offsets: list[int]

    def chunks(self, trial: str, execution: int, producer: str, first: int) -> list[Chunk]:
        """The records as chunks of one kind each; the first seq is ``first``."""
        runs = runs_of_one_kind(self.kinds)
        return [
            Chunk(
                trial,
                execution,
                producer,
                first + start,
                end - start,
                kind,
                self.packed if len(runs) == 1 else sliced(self.packed, self.offsets, start, end),
            )
            for start, end, kind in runs
        ]


def checked_records(packed: Any) -> CheckedRecords:
    """A records message's ``[kind, body]`` pairs, checked, or BadRequest.  Each body is
    checked to be a well-formed map and skipped, never decoded."""
    if not isinstance(packed, bytes):
        raise BadRequest("records must be a packed list")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(packed) + 1)
    unpacker.feed(packed)
    kinds: list[str] = []
    offsets: list[int] = []
    try:
        count = unpacker.read_array_header()
        if not 0 < count <= protocol.MAX_RECORDS_PER_MESSAGE:
            raise BadRequest(
                "records must be a list of 1 to "
                f"{protocol.MAX_RECORDS_PER_MESSAGE} [kind, body] pairs"
            )
        for _ in range(count):
            offsets.append(unpacker.tell())
            if unpacker.read_array_header() != 2:
                raise BadRequest("a record is a [kind, body] pair")
            kind = unpacker.unpack()
            if kind not in RECORD_KINDS:
                raise BadRequest(f"unknown record kind {str(kind)[:40]!r}")
            if packed[unpacker.tell()] not in _MAP_HEADS:
                raise BadRequest(f"a {kind} record's body must be a map")
            unpacker.skip()
            kinds.append(kind)
        offsets.append(unpacker.tell())
    except BadRequest:
        raise
    except Exception as exc:  # msgpack raises several unrelated types; truncation too
        raise BadRequest(f"undecodable records: {exc!r:.120}") from None
    if offsets[-1] != len(packed):
        raise BadRequest("records are followed by stray bytes")
    return CheckedRecords(packed, kinds, offsets)


def runs_of_one_kind(kinds: list[str]) -> list[tuple[int, int, str]]:
    """Split consecutive records into (start, end, kind) runs of the same kind."""
    runs: list[tuple[int, int, str]] = []
    start = 0
    for index in range(1, len(kinds) + 1):
        if index == len(kinds) or kinds[index] != kinds[start]:
            runs.append((start, index, kinds[start]))
            start = index
    return runs


def sliced(packed: bytes, offsets: list[int], start: int, end: int) -> bytes:
    """Records ``start`` to ``end`` of a packed list, as a packed list of their own."""
    return protocol.packed_list(end - start, packed[offsets[start] : offsets[end]])
