"""A trial's effective history of statistics as stored chunks, read a page at a time.

The daemon first names the segments (which stored chunk, which of its records count)
without their bodies; the reader then asks for the bodies, or for their records cut
into columns, a page of about ``PAGE_RECORDS`` records per request, two requests in
flight.  No request holds the daemon long, and it keeps one page in memory, whatever
the history's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from kleio_client import protocol
from kleio_client.control import ControlClient

PAGE_RECORDS = 65536  # records per request
IN_FLIGHT = 2  # requests asked before the first answer is read

Segment = dict[str, Any]


def pages(segments: list[Segment]) -> Iterator[tuple[int, list[Segment]]]:
    """Consecutive segments of about ``PAGE_RECORDS`` records, each with its first index."""
    first, size = 0, 0
    for index, segment in enumerate(segments):
        size += segment["end"] - segment["start"]
        if size >= PAGE_RECORDS or index + 1 - first >= protocol.MAX_PAGE_SEGMENTS:
            yield first, segments[first : index + 1]
            first, size = index + 1, 0
    if first < len(segments):
        yield first, segments[first:]


def described(page: list[Segment]) -> list[Segment]:
    """What names a page's segments in a request."""
    return [{k: s[k] for k in ("trial", "position", "start", "end")} for s in page]


def each_page(
    client: ControlClient,
    segments: list[Segment],
    cmd: str,
    take: Callable[[int, list[Segment], Any], None],
    **args: Any,
) -> None:
    """Ask ``cmd`` for every page of the segments, ``IN_FLIGHT`` at a time, and hand
    each answer to ``take`` with the page's first index and segments, in order."""
    asked: deque[tuple[int, list[Segment], int]] = deque()
    for first, page in pages(segments):
        asked.append((first, page, client.submit(cmd, segments=described(page), **args)))
        if len(asked) >= IN_FLIGHT:
            first, page, request = asked.popleft()
            take(first, page, client.result(request, cmd))
    while asked:
        first, page, request = asked.popleft()
        take(first, page, client.result(request, cmd))


def read(client: ControlClient, trial: str) -> list[Segment]:
    """The trial's segments, each with its ``body`` (packed ``[kind, record]`` pairs)."""
    segments: list[Segment] = client.call("stats", id=trial, segments=True, bodies=False)
    each_page(client, segments, "chunks", lambda _first, page, bodies: attach(page, bodies))
    return segments


def attach(page: list[Segment], bodies: list[bytes]) -> None:
    """Give a page's segments the bodies a ``chunks`` request answered, in order."""
    for segment, body in zip(page, bodies, strict=True):
        segment["body"] = body


records = protocol.chunk_records  # the records of a stored body, in one C call


def unpacked(segments: list[Segment], use_list: bool = True) -> list[dict[str, Any]]:
    """The records of segments with their bodies, in order."""
    return [
        record for s in segments for record in records(s["body"], s["start"], s["end"], use_list)
    ]
