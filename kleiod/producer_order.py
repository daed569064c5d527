"""The order of each producer's records: how far each was received with no hole.

Messages from one producer arrive in order, but a daemon that stopped or
crashed loses what it had not committed, so a message may arrive past a hole.
This module owns, per (trial, execution, producer), the last seq up to which
everything was received in order (starting from what storage or the daemon's
spill already holds), decides whether a message continues it, and says up to
which seq a producer may be acknowledged: a lost message is never acked.
"""

from __future__ import annotations

import logging

from kleiod.errors import StorageError
from kleiod.spill import Spill
from kleiod.storage.base import Storage

log = logging.getLogger(__name__)

ProducerKey = tuple[str, int, str]  # trial, execution, producer


class ProducerOrder:
    """Per producer, the last seq up to which everything was received in order."""

    def __init__(self, storage: Storage, spill: Spill) -> None:
        self._storage = storage
        self._spill = spill
        self._contiguous: dict[ProducerKey, int] = {}

    def in_order(self, trial: str, execution: int, producer: str, first: int) -> bool:
        """Whether a message continues what its producer sent.  One past a hole (messages
        lost with a daemon that stopped or crashed) is dropped unacknowledged: the
        producer sends everything unacknowledged again, in order, when it reconnects,
        and the journal keeps each producer's records in the order they were logged.
        What the producer sent before is what storage has, or the spill holds."""
        key = (trial, execution, producer)
        if key not in self._contiguous:
            self._contiguous[key] = self._known_last(key, first)
        if first > self._contiguous[key] + 1:  # another daemon may have stored more since
            self._contiguous[key] = max(self._contiguous[key], self._known_last(key, 1))
        if first <= self._contiguous[key] + 1:
            return True
        log.info(
            "producer %s of trial %s: records %d to %d are missing; waiting for them "
            "to be sent again",
            producer,
            trial[:12],
            self._contiguous[key] + 1,
            first - 1,
        )
        return False

    def _known_last(self, key: ProducerKey, first: int) -> int:
        """The producer's last seq stored or spilled; with the database away, this
        message's (trusted to continue what came before)."""
        try:
            stored = self._storage.last_seq(*key)
        except StorageError:
            stored = first - 1
        return max(stored, self._spill.last_seq(*key))

    def advance(self, trial: str, execution: int, producer: str, first: int, count: int) -> int:
        """Acknowledge only what has no hole before it: a lost message is never acked."""
        key = (trial, execution, producer)
        if key not in self._contiguous:
            self.in_order(trial, execution, producer, first)
        if first <= self._contiguous[key] + 1:
            self._contiguous[key] = max(self._contiguous[key], first + count - 1)
        return self._contiguous[key]
