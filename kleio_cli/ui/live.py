"""A running trial's new output and statistics, pushed to the browser as Server-Sent
Events from the daemon's pub/sub.

The feed subscribes first, then reads where the page left off (``after``: the
output's last position the page has); from then on each live chunk that continues
what was sent (its number is the next) is sent as it comes, without asking the
database.  A chunk missed (a slow reader, a restarted daemon) makes the feed read the
journal again from the last position sent, as `kleio tail -f` does; so does a quiet
``CHECK_EVERY``, which also sees the trial end.

Events: ``ready`` (subscribed: ``{"status"}``), ``output`` (``{"stream", "text",
"position"}``), ``statistic`` (``{"records": [...]}``) and ``end`` (``{"status"}``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from kleio_cli.ui import jsonable
from kleio_cli.ui.reader import Reader
from kleio_client import protocol
from kleio_runtime.config import Config

KINDS = (protocol.OUTPUT, protocol.STATISTIC)
STEP = 0.25  # seconds between looks at a closed connection
CHECK_EVERY = 5.0
KEEP_ALIVE = 15.0


@dataclass
class _Place:
    """How far a kind was sent: its last position, and the live chunk expected next."""

    position: int | None
    expected: int
    boot: str | None


@dataclass
class Feed:
    config: Config
    reader: Reader
    trial_id: str
    after: int | None = None  # the output's last position the page has
    _places: dict[str, _Place] = field(default_factory=dict)
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def events(self) -> Iterator[str]:
        with _Subscription(self.config, self.trial_id) as subscription:
            self._page(protocol.OUTPUT, {} if self.after is None else {"after": self.after})
            # The chart has the statistics so far: only those to come.
            status = self._page(protocol.STATISTIC, {"last": 0})["status"]
            yield _event("ready", {"status": status})
            for kind in KINDS:
                yield from self._sent(kind, self._pending.pop(kind, []))
            yield from self._followed(subscription, status)

    def _reread(self, kind: str) -> str:
        """Read the journal from the last position sent; the trial's status."""
        position = self._places[kind].position
        return str(self._page(kind, {} if position is None else {"after": position})["status"])

    def _page(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        page = dict(self.reader.call("tail", id=self.trial_id, kind=kind, **args))
        self._places[kind] = _Place(page["end"], page["published"] + 1, page["boot"])
        self._pending[kind] = page["records"]
        return page

    def _followed(self, subscription: _Subscription, status: str) -> Iterator[str]:
        checked = spoke = time.monotonic()
        while status == "running":
            message = subscription.receive(STEP)
            now = time.monotonic()
            if message is not None:
                kind, chunk = message
                position = self._places[kind].position
                if position is not None and chunk["position"] <= position:
                    continue  # read with the journal already
                if not self._continues(kind, chunk):
                    status = self._reread(kind)
                    records = self._pending.pop(kind, [])
                else:
                    records = _records(chunk)
                    self._places[kind].position = records[-1]["position"]
                    self._places[kind].expected += 1
                yield from self._sent(kind, records)
                spoke = now
            elif now - checked >= CHECK_EVERY:
                checked = now
                for kind in KINDS:
                    status = self._reread(kind)
                    yield from self._sent(kind, self._pending.pop(kind, []))
            elif now - spoke >= KEEP_ALIVE:
                spoke = now
                yield ": still here\n\n"
        yield _event("end", {"status": status})

    def _continues(self, kind: str, chunk: dict[str, Any]) -> bool:
        place = self._places[kind]
        return chunk["n"] == place.expected and chunk.get("boot") == place.boot

    def _sent(self, kind: str, records: list[dict[str, Any]]) -> Iterator[str]:
        if not records:
            return
        if kind == protocol.OUTPUT:
            for record in records:
                body = record["body"]
                yield _event(
                    "output",
                    {
                        "stream": body.get("stream"),
                        "position": record["position"],
                        "text": body.get("data", b""),
                    },
                )
        else:
            yield _event("statistic", {"records": [r["body"] for r in records]})


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {jsonable.dumps(data)}\n\n"


def _records(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = msgpack.unpackb(chunk["records"], raw=False, strict_map_key=False)
    return [
        {"position": chunk["position"] + index, "execution": chunk["execution"], "body": pair[1]}
        for index, pair in enumerate(pairs)
    ]


class _Subscription:
    """The daemon's live chunks of one trial, both kinds, on a SUB socket of its own."""

    def __init__(self, config: Config, trial_id: str) -> None:
        endpoint = protocol.Endpoints.in_directory(str(config.runtime_dir)).publish
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._topics = {protocol.live_topic(trial_id, kind): kind for kind in KINDS}
        for topic in self._topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic)
        self._socket.connect(endpoint)

    def receive(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        if not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        topic, frame = self._socket.recv_multipart()
        return self._topics[topic], protocol.unpack(frame, limit=None)

    def __enter__(self) -> _Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
        self._context.term()
