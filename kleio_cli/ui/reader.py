"""The journal as the web view reads it: every question asked of kleiod, never of the
database, on one control connection per server thread.

A trial's effective history is read as columns once per state of the journal (its
segments name what is stored: a new record makes new segments) and kept for the next
question, so that zooming into a million-point curve reads nothing again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kleio_cli import statistics
from kleio_cli.carriage import Collapser
from kleio_cli.connection import connect
from kleio_cli.ui import downsample
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable
from kleio_client.protocol import collection_paused
from kleio_runtime.config import Config

KEPT_HISTORIES = 8  # histories kept in memory, the least recently read dropped first


@dataclass(frozen=True)
class History:
    """A trial's effective history (matching a ``where``) as columns: ``rows`` long each."""

    labels: list[str]
    columns: dict[str, list[Any]]
    rows: int
    # Each column as floats, made once for every chart that reads it (see ``numbers``).
    _numbers: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def numbers(self, key: str) -> Any:
        """The column ``key`` as a float array (NaN where no finite number), or None."""
        if key not in self._numbers:
            column = self.columns.get(key)
            self._numbers[key] = None if column is None else downsample.numbers(column)
        return self._numbers[key]


class Reader:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._local = threading.local()
        self._histories: OrderedDict[tuple[Any, ...], History] = OrderedDict()
        self._lock = threading.Lock()
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
        """The effective history of ``trial`` as columns, read again only once it grew."""
        conditions = statistics.conditions(list(where))
        with self._client() as client:
            segments = client.call("stats", id=trial, segments=True, bodies=False)
            key = (
                tuple(where),
                *[(s["trial"], s["position"], s["start"], s["end"]) for s in segments],
            )
            with self._lock:
                kept = self._histories.get(key)
                if kept is not None:
                    self._histories.move_to_end(key)
                    return kept
            with collection_paused():
                table = statistics.paged(client, segments, conditions)
        found = History(
            table.labels, dict(zip(table.labels, table.columns, strict=True)), len(table.origins)
        )
        with self._lock:
            self._histories[key] = found
            while len(self._histories) > KEPT_HISTORIES:
                self._histories.popitem(last=False)
        return found

    @staticmethod
    def collapsed(records: list[dict[str, Any]]) -> str:
        """Output records as `kleio cat` shows them: both streams in journal order, each
        line's carriage-return rewrites collapsed to its last."""
        collapsers = {name: Collapser() for name in ("stdout", "stderr")}
        parts = [collapsers[r["body"]["stream"]].feed(r["body"]["data"]) for r in records]
        parts += [collapser.finish() for collapser in collapsers.values()]
        return b"".join(parts).decode(errors="replace")
