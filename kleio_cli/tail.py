"""``kleio tail``: a trial's last lines (or statistics), then, with ``-f``, what comes live.

Following subscribes to the daemon's live chunks first, then reads the
journal; from then on a live chunk is shown when it continues what was shown
(its number is the next one) and skipped when its position was shown already.
Anything else (a chunk missed by a slow reader, a daemon restarted) and every
``POLL`` seconds in any case, the journal is read again from the last position
shown: so no line is missing or doubled, a trial that runs on another machine
sharing the database is followed by polling, and the end of the trial is seen.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from kleio_cli import render
from kleio_cli.connection import connect
from kleio_cli.errors import CliError
from kleio_client import protocol
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable
from kleio_runtime.config import Config, resolve

POLL = 0.5
REQUEST_TIMEOUT = 5.0
RECONNECT_FOR = 60.0  # how long a follower waits for a daemon to answer again
ACTIVE = frozenset({"running"})
COLUMN = 12


@dataclass(frozen=True)
class TailOptions:
    trial: str
    lines: int | None  # None: everything stored
    follow: bool
    statistics: bool

    @property
    def kind(self) -> str:
        return protocol.STATISTIC if self.statistics else protocol.OUTPUT


def tail(options: TailOptions) -> None:
    config = resolve()
    with connect(config) as client:
        trial_id = str(client.call("resolve", id=options.trial))
        show = StatisticsTable().show if options.statistics else show_output
        if not options.follow:
            show(
                dict(client.call("tail", id=trial_id, kind=options.kind, last=options.lines))[
                    "records"
                ]
            )
            return
    follower = Follower(config, trial_id, options.kind)
    journal = Journal(config, trial_id, options.kind)
    try:
        _follow(journal, follower, options, show)
    finally:
        journal.close()
        follower.close()


class Journal:
    """Pages of the trial's journal, read through whichever daemon answers: one connection
    while it answers, a new one (never a new daemon) when it stops answering, so that a
    follower outlives a daemon restart."""

    def __init__(self, config: Config, trial_id: str, kind: str) -> None:
        self._config = config
        self._trial_id = trial_id
        self._kind = kind
        self._client: ControlClient | None = None

    def page(self, **args: Any) -> dict[str, Any]:
        deadline = time.monotonic() + RECONNECT_FOR
        while True:
            try:  # never starts a daemon: one stopped on purpose stays stopped
                if self._client is None:
                    self._client = connect(self._config, start=False, timeout=REQUEST_TIMEOUT)
                return dict(self._client.call("tail", id=self._trial_id, kind=self._kind, **args))
            except (DaemonUnavailable, CliError):
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _follow(journal: Journal, follower: Follower, options: TailOptions, show: Any) -> None:
    page = journal.page(last=options.lines)
    while True:
        show(page["records"])
        position, expected = page["end"], page["published"] + 1
        if page["status"] not in ACTIVE:
            return
        read_at = time.monotonic()
        while time.monotonic() - read_at < POLL:
            message = follower.receive(max(0.0, POLL - (time.monotonic() - read_at)))
            if message is None:
                break
            if position is not None and message["position"] <= position:
                continue  # read with the journal already
            if message["n"] != expected or message.get("boot") != page["boot"]:
                break  # a chunk was missed (or another daemon numbers them): read again
            records = _records(message)
            show(records)
            position, expected = records[-1]["position"], expected + 1
        page = journal.page(after=position)


def _records(message: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = msgpack.unpackb(message["records"], raw=False, strict_map_key=False)
    return [
        {
            "position": message["position"] + index,
            "execution": message["execution"],
            "body": pair[1],
        }
        for index, pair in enumerate(pairs)
    ]


class Follower:
    """A subscription to one trial's live chunks of one kind."""

    def __init__(self, config: Config, trial_id: str, kind: str) -> None:
        endpoint = protocol.Endpoints.in_directory(str(config.runtime_dir)).publish
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, 100_000)
        self._socket.setsockopt(zmq.SUBSCRIBE, protocol.live_topic(trial_id, kind))
        self._socket.connect(endpoint)

    def receive(self, timeout: float) -> dict[str, Any] | None:
        if not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        frames = self._socket.recv_multipart()
        try:
            return protocol.unpack(frames[-1], limit=None)
        except protocol.ProtocolError:
            return None

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()


def show_output(records: list[dict[str, Any]]) -> None:
    for record in records:
        stream = sys.stderr if record["body"].get("stream") == "stderr" else sys.stdout
        stream.flush()
        stream.buffer.write(record["body"]["data"])
        stream.buffer.flush()


class StatisticsTable:
    """Rows printed as they come, in columns; a new key prints the header again."""

    def __init__(self) -> None:
        self._keys: list[str] = []

    def show(self, records: list[dict[str, Any]]) -> None:
        lines = []
        for record in records:
            body = record["body"]
            new = [key for key in body if key not in self._keys]
            if new or not self._keys:
                self._keys += new
                lines.append(self._line(self._keys))
            lines.append(self._line([_cell(body.get(key)) for key in self._keys]))
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    def _line(self, cells: list[str]) -> str:
        widths = [max(COLUMN, len(key)) for key in self._keys]
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return render.clip(str(value), COLUMN)
