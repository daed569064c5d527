"""The batch being committed: records taken in, written to storage, then acknowledged.

Records from every producer gather in one batch until it is due
(``BATCH_RECORDS`` records, or ``BATCH_SECONDS`` after its first), then the
daemon's own spill (oldest first) and the batch are written to storage; only
then is each producer acknowledged up to what it sent in order, and the
senders of records that storage refused (an execution that does not own its
trial) told so.  While the database is away the batch is kept and retried
with backoff, and once it holds more than ``hold_bytes`` it is spilled to
disk and acknowledged, so that memory stays bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kleio_client import protocol
from kleiod.errors import StorageError
from kleiod.live import Live
from kleiod.spill import Spill
from kleiod.storage.base import Appended, Chunk, Storage

log = logging.getLogger(__name__)

BATCH_RECORDS = 50_000
BATCH_SECONDS = 0.02
MAX_BACKOFF = 5.0

Send = Callable[[bytes, dict[str, Any]], None]  # to a producer, by its socket identity


@dataclass
class IngestCounters:
    committed: int = 0
    duplicates: int = 0
    refused_messages: int = 0
    refused_records: int = 0
    held: int = 0  # records kept in memory while the database is away
    out_of_order: int = 0  # messages past a hole, dropped until they are sent again


@dataclass
class _Batch:
    chunks: list[Chunk] = field(default_factory=list)
    records: int = 0
    size: int = 0  # bytes of packed records
    acks: dict[tuple[bytes, str], int] = field(default_factory=dict)
    sources: dict[tuple[str, int], set[tuple[bytes, str]]] = field(default_factory=dict)
    started: float = 0.0


class Committer:
    """Owns the batch, its commit and backoff, and the acknowledgements that follow."""

    def __init__(
        self,
        storage: Storage,
        live: Live,
        spill: Spill,
        hold_bytes: int,
        counters: IngestCounters,
        send: Send,
    ) -> None:
        self._storage = storage
        self._live = live
        self._spill = spill
        self._hold_bytes = hold_bytes
        self._counters = counters
        self._send = send
        self._batch = _Batch()
        self._retry_at = 0.0
        self._backoff = 0.0
        self._away = ""
        self._spill_failed = False
        self.back_at: float | None = None  # when the database last came back

    def add(
        self, identity: bytes, producer: str, chunks: list[Chunk], size: int, acked: int
    ) -> None:
        """One message's chunks (``size`` packed bytes), acknowledged up to ``acked`` once
        committed."""
        batch = self._batch
        if not batch.chunks:
            batch.started = time.monotonic()
        batch.chunks.extend(chunks)
        batch.records += sum(chunk.count for chunk in chunks)
        batch.size += size
        batch.acks[(identity, producer)] = acked
        source = (chunks[0].trial_id, chunks[0].execution)
        batch.sources.setdefault(source, set()).add((identity, producer))
        if self._retry_at:
            self._counters.held = batch.records
            if batch.size > self._hold_bytes:
                self._spill_batch()

    def due_in(self) -> float | None:
        """Seconds until the batch must be committed; None when it is empty."""
        if not self._batch.chunks and not self._spill.pending:
            return None
        if self._retry_at:  # the database failed: retry with backoff, records kept
            return max(0.0, self._retry_at - time.monotonic())
        if self._batch.records >= BATCH_RECORDS or self._spill.pending:
            return 0.0
        return max(0.0, self._batch.started + BATCH_SECONDS - time.monotonic())

    def database_away(self) -> bool:
        return bool(self._retry_at)

    def ensure_database(self) -> None:
        """Fail fast while the database is away, rather than block the daemon's loop."""
        if self._retry_at and time.monotonic() < self._retry_at:
            raise StorageError(
                f"{self._away}; kleiod retries in "
                f"{self._retry_at - time.monotonic():.1f} s and keeps every "
                "record meanwhile"
            )

    def commit(self) -> None:
        """Write the spill (oldest first) and the batch; on a database error keep both,
        spilling the batch to disk once it holds more than ``hold_bytes``."""
        batch = self._batch
        if not batch.chunks and not batch.acks and not self._spill.pending:
            return
        self.ensure_database()
        try:
            replayed = self._spill.replay(self._storage) if self._spill.pending else []
            appended = self._storage.append_chunks(batch.chunks)
        except StorageError as exc:
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 0.1)
            self._retry_at = time.monotonic() + self._backoff
            self._away = str(exc)
            self._counters.held = batch.records
            log.error(
                "%s; keeping %d records, retrying in %.1f s", exc, batch.records, self._backoff
            )
            if batch.size > self._hold_bytes:
                self._spill_batch()
            raise
        if self._retry_at:
            log.warning("the database is back: %d records written", batch.records)
            self.back_at = time.monotonic()
        self._retry_at, self._backoff, self._counters.held = 0.0, 0.0, 0
        self._batch = _Batch()
        for earlier in replayed:
            self._account(earlier, sum(p.count for _, p in earlier.stored), 0)
        refused = sum(
            c.count for c in batch.chunks if (c.trial_id, c.execution) in appended.refused
        )
        self._account(appended, batch.records, refused)
        self._refuse(batch, appended.refused)
        # Refused records are acknowledged too: resending them cannot help.
        self._acknowledge(batch)

    def _account(self, appended: Appended, records: int, refused: int) -> None:
        self._counters.committed += appended.inserted
        self._counters.refused_records += refused
        self._counters.duplicates += records - appended.inserted - refused
        for position, chunk in appended.stored:
            self._live.publish(position, chunk)

    def _acknowledge(self, batch: _Batch) -> None:
        for (identity, producer), seq in batch.acks.items():
            self._send(identity, protocol.ack(producer, seq))

    def _spill_batch(self) -> None:
        """The batch to disk, acknowledged: memory stays bounded while the database is away.
        A spill that cannot be written (the same full disk) keeps the batch in memory, and
        the daemon stops reading producers until it shrinks: they buffer on their side."""
        try:
            self._spill.add(self._batch.chunks)
        except OSError as exc:
            if not self._spill_failed:
                log.error(
                    "cannot spill records to disk (%s); keeping them in memory and "
                    "pausing producers",
                    exc,
                )
            self._spill_failed = True
            return
        self._spill_failed = False
        batch, self._batch = self._batch, _Batch()
        self._counters.held = 0
        self._acknowledge(batch)

    def accepting(self) -> bool:
        """Whether to read producers now: not while memory holds twice the bound."""
        return not self._retry_at or self._batch.size <= 2 * self._hold_bytes

    @property
    def database_error(self) -> str | None:
        """Why the database takes no writes now, or None."""
        return self._away if self._retry_at else None

    def close(self) -> None:
        """At the daemon's stop: commit, or leave what cannot be written in the spill."""
        try:
            self.commit()
        except StorageError:
            if self._batch.chunks:
                self._spill_batch()
            log.warning(
                "the database is away: %d records are kept in the spill for the next daemon",
                self._spill.records,
            )
        self._spill.close()

    def _refuse(self, batch: _Batch, refused: set[tuple[str, int]]) -> None:
        for trial, execution in refused:
            log.warning(
                "refused records of execution %s of trial %s: not its owner", execution, trial
            )
            message = protocol.refused(
                protocol.E_NOT_FOUND,
                f"execution {execution} of trial {trial[:12]} does not own the trial "
                "(unknown, or resumed elsewhere); its records are not stored",
            )
            for identity, _producer in batch.sources.get((trial, execution), ()):
                self._send(identity, message)
