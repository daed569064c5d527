"""The journal as the web view reads it: every question asked of kleiod, never of the
database, on one control connection per server thread.

A trial's effective history is read once per state of the journal (its segments name
what is stored: a new record makes new segments) and kept for the next question, so
that zooming into a million-point curve reads nothing again.  A chart reads it as float
columns decoded straight from the stored chunks (kleio_cli.ui.chunk_columns, thirty
times faster than unpacking a record at a time); the exact values (texts, integers) a
script asks for are the daemon's columns, read on first use.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from kleio_cli import statistics
from kleio_cli.carriage import Collapser
from kleio_cli.connection import connect
from kleio_cli.ui import chunk_columns, downsample
from kleio_client import segments as stored
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable
from kleio_client.protocol import collection_paused
from kleio_runtime.config import Config

KEPT_HISTORIES = 8  # histories kept in memory, the least recently read dropped first

Exact = Callable[[], dict[str, list[Any]]]


class History:
    """A trial's effective history (matching a ``where``): its keys in order of first
    appearance, ``rows`` records, each key as floats for charts (:meth:`numbers`) and
    as the values logged (:attr:`columns`), each made once, when first asked for."""

    def __init__(
        self, labels: list[str], rows: int, numbers: dict[str, np.ndarray], exact: Exact
    ) -> None:
        self.labels = labels
        self.rows = rows
        self._numbers = numbers
        self._exact = exact
        self._columns: dict[str, list[Any]] | None = None
        self._lock = threading.Lock()

    def numbers(self, key: str) -> np.ndarray | None:
        """The column ``key`` as a float array (NaN where no finite number), or None."""
        with self._lock:
            if key not in self._numbers and key in self.labels:
                column = self._columns_held()[key]
                self._numbers[key] = downsample.numbers(column)
            return self._numbers.get(key)

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Each key's values as logged, None where a record lacks the key."""
        with self._lock:
            return self._columns_held()

    def _columns_held(self) -> dict[str, list[Any]]:
        if self._columns is None:
            self._columns = self._exact()
        return self._columns


class Reader:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._local = threading.local()
        self._histories: OrderedDict[tuple[Any, ...], History] = OrderedDict()
        self._lock = threading.Lock()
        self._readers: dict[tuple[Any, ...], tuple[threading.Lock, int]] = {}
        with self._client() as client:  # start the daemon now, if none runs
            client.call("status")

    @contextmanager
    def _client(self) -> Iterator[ControlClient]:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = connect(self._config)
        try:
            yield client
        except DaemonUnavailable:  # the daemon restarted: a new connection next time
            client.close()
            self._local.client = None
            raise

    def call(self, cmd: str, **args: Any) -> Any:
        with self._client() as client:
            return client.call(cmd, **args)

    def history(self, trial: str, where: tuple[str, ...] = ()) -> History:
        """The effective history of ``trial``, read again only once it grew."""
        with self._client() as client:
            segments = client.call("stats", id=trial, segments=True, bodies=False)
        key = (tuple(where), *[(s["trial"], s["position"], s["start"], s["end"]) for s in segments])
        with self._reading(key):  # two questions at once about one history read it once
            with self._lock:
                kept = self._histories.get(key)
                if kept is not None:
                    self._histories.move_to_end(key)
                    return kept
            found = self._filtered(segments, where) if where else self._decoded(segments)
            with self._lock:
                self._histories[key] = found
                while len(self._histories) > KEPT_HISTORIES:
                    self._histories.popitem(last=False)
            return found

    @contextmanager
    def _reading(self, key: tuple[Any, ...]) -> Iterator[None]:
        """Hold the lock of the history ``key`` (made for the first reader, dropped by
        the last)."""
        with self._lock:
            lock, users = self._readers.get(key, (threading.Lock(), 0))
            self._readers[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._readers[key]
                if users == 1:
                    del self._readers[key]
                else:
                    self._readers[key] = (lock, users - 1)

    def _decoded(self, segments: list[dict[str, Any]]) -> History:
        """The whole history: float columns decoded from the stored chunks here, a page
        while the daemon reads the next; the exact values from the daemon when asked."""
        firsts = list(itertools.accumulate((s["end"] - s["start"] for s in segments), initial=0))
        sink = chunk_columns.Sink(firsts[-1])

        def take(index: int, page: list[dict[str, Any]], bodies: list[bytes]) -> None:
            for number, (segment, body) in enumerate(zip(page, bodies, strict=True), index):
                chunk_columns.put(sink, firsts[number], body, segment["start"], segment["end"])

        with self._client() as client:
            stored.each_page(client, segments, "chunks", take)
        labels, numbers = sink.finished()
        return History(labels, sink.rows, numbers, lambda: self._exact(segments, ()))

    def _filtered(self, segments: list[dict[str, Any]], where: tuple[str, ...]) -> History:
        """The records matching ``where``, cut into columns by the daemon."""
        columns = self._exact(segments, where)
        rows = len(next(iter(columns.values()), []))
        return History(list(columns), rows, {}, lambda: columns)

    def _exact(self, segments: list[dict[str, Any]], where: tuple[str, ...]) -> dict[str, Any]:
        conditions = statistics.conditions(list(where))
        with self._client() as client, collection_paused():
            table = statistics.paged(client, segments, conditions)
        return dict(zip(table.labels, table.columns, strict=True))

    @staticmethod
    def collapsed(records: list[dict[str, Any]]) -> str:
        """Output records as `kleio cat` shows them: both streams in journal order, each
        line's carriage-return rewrites collapsed to its last."""
        collapsers = {name: Collapser() for name in ("stdout", "stderr")}
        parts = [collapsers[r["body"]["stream"]].feed(r["body"]["data"]) for r in records]
        parts += [collapser.finish() for collapser in collapsers.values()]
        return b"".join(parts).decode(errors="replace")
