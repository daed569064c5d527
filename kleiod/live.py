"""Live records for followers (`kleio tail -f`): the daemon's PUB socket.

Every chunk of output or statistics the daemon commits is published once, on
the topic ``trial.<id>.<kind>``, numbered per (trial, kind).  A follower
subscribes first, then reads the journal, which answers with the number of
the last chunk published before that read: a live chunk numbered at most
that is already in what it read, the next one continues it, and any other
number means the follower missed one (PUB drops for slow readers, a daemon
restarted) and reads the journal again from its last position.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from kleio_client import protocol
from kleiod.storage.base import Chunk

FOLLOWED_KINDS = frozenset({protocol.OUTPUT, protocol.STATISTIC})


class Live:
    def __init__(self, send: Callable[[list[bytes]], object]) -> None:
        """``send`` puts frames on the PUB socket (``socket.send_multipart``)."""
        self._send = send
        # Numbers are this daemon's: a follower that sees another boot has missed chunks.
        self.boot = uuid.uuid4().hex[:12]
        self._published: dict[tuple[str, str], int] = {}

    def publish(self, position: int, chunk: Chunk) -> None:
        """Chunk ``chunk`` whose first record is at ``position``."""
        if chunk.kind not in FOLLOWED_KINDS:
            return
        key = (chunk.trial_id, chunk.kind)
        number = self._published.get(key, 0) + 1
        self._published[key] = number
        message = protocol.live(self.boot, number, position, chunk.execution, chunk.body)
        self._send([protocol.live_topic(chunk.trial_id, chunk.kind), protocol.pack(message)])

    def published(self, trial_id: str, kind: str) -> int:
        """How many chunks of that kind were published for the trial so far."""
        return self._published.get((trial_id, kind), 0)
