"""Ingest: records from producers, batched into storage and acknowledged once committed.

Messages from one producer arrive in order on the ingest ROUTER socket, so
when a ``sync`` or ``query`` arrives, everything that producer sent before it
is in the current batch: committing the batch then answering is enough to
acknowledge all of it.  This module owns the socket's traffic: it turns each
message into a call (or a refusal), takes in records messages and producers'
spill files in order, and hands the rest to the nouns that own them: the
checks of a message (ingest_message), the order per producer
(producer_order), the batch and its acknowledgements (batch), blob uploads
(blob_uploads) and scripts' queries (script_queries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from kleio_client import protocol, spill
from kleiod.batch import BATCH_RECORDS, BATCH_SECONDS, MAX_BACKOFF, Committer, IngestCounters
from kleiod.blob_uploads import BlobUploads
from kleiod.errors import BadRequest, KleiodError, StorageError
from kleiod.ingest_message import RECORD_KINDS, checked_records, counter
from kleiod.live import Live
from kleiod.producer_order import ProducerOrder
from kleiod.script_queries import ScriptQueries
from kleiod.spill import Spill
from kleiod.storage.base import Storage

__all__ = [
    "BATCH_RECORDS",
    "BATCH_SECONDS",
    "MAX_BACKOFF",
    "RECORD_KINDS",
    "Buffering",
    "Ingest",
    "IngestCounters",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Buffering:
    """Where records wait when they cannot be written or sent."""

    spill: Spill  # the daemon's own, while the database is away
    hold_bytes: int  # held in memory before that spill
    producer_spills: Path  # producers' files, while no daemon answered them


class Ingest:
    """Owns the ingest socket's traffic: batching, acknowledgement, uploads."""

    def __init__(
        self,
        storage: Storage,
        socket: zmq.Socket,
        live: Live,
        buffering: Buffering,
    ) -> None:
        self._socket = socket
        self.live = live
        self.spill = buffering.spill
        self._producer_spills = buffering.producer_spills
        self.counters = IngestCounters()
        self._order = ProducerOrder(storage, self.spill)
        self._batch = Committer(
            storage, live, self.spill, buffering.hold_bytes, self.counters, self._send
        )
        self._uploads = BlobUploads(storage, self._send)
        self._queries = ScriptQueries(storage, self._send, self.commit)

    # -- receiving --------------------------------------------------------------

    def accept(self, identity: bytes, frame: bytes) -> None:
        message: dict[str, Any] = {}
        try:
            message = protocol.unpack(frame)
            handler = self._handlers().get(message["t"])
            if handler is None:
                raise BadRequest(f"unknown message type {message['t']!r}")
            handler(identity, message)
        except (protocol.ProtocolError, KeyError, TypeError, ValueError, KleiodError) as exc:
            if isinstance(exc, StorageError) and message.get("t") != protocol.QUERY:
                raise
            self.counters.refused_messages += 1
            log.warning("refused an ingest message: %r", exc)
            code = getattr(exc, "code", protocol.E_BAD_REQUEST)
            req = message.get("req") if isinstance(message.get("req"), int) else None
            self._send(identity, protocol.refused(code, f"refused: {exc}", req))

    def _handlers(self) -> dict[str, Callable[[bytes, dict[str, Any]], None]]:
        return {
            protocol.RECORDS: self._records,
            protocol.SYNC: self._sync,
            protocol.SPILLED: self._spilled,
            protocol.BLOB: self._uploads.take,
            protocol.QUERY: self._queries.answer,
        }

    def _records(self, identity: bytes, message: dict[str, Any]) -> None:
        trial, execution = str(message["trial"]), counter(message["execution"], "execution")
        producer, first = str(message["producer"]), counter(message["seq"], "seq")
        records = checked_records(message["records"])
        if not self._order.in_order(trial, execution, producer, first):
            self.counters.out_of_order += 1
            return
        acked = self._order.advance(trial, execution, producer, first, len(records.kinds))
        self._batch.add(
            identity,
            producer,
            records.chunks(trial, execution, producer, first),
            len(records.packed),
            acked,
        )

    def _spilled(self, identity: bytes, message: dict[str, Any]) -> None:
        """A producer's oldest messages wait in its spill file: take them in, in order."""
        path = Path(str(message["path"]))
        if path.parent != self._producer_spills or not path.name.endswith(spill.SUFFIX):
            raise BadRequest(f"{path} is not a spill file of {self._producer_spills}")
        producer = str(message["producer"])
        for frame in spill.frames(path) if path.exists() else ():
            records = protocol.unpack(frame)
            if records.get("t") != protocol.RECORDS or records.get("producer") != producer:
                raise BadRequest(f"{path} holds another producer's messages")
            self._records(identity, records)

    def adopt_orphans(self) -> None:
        """Take in the spill files that producers left when they exited with no daemon."""
        for path, handle in spill.orphans(self._producer_spills):
            try:
                log.warning("taking in %s, left by a producer that ended with no daemon", path)
                for frame in spill.frames(path):
                    self.accept(b"", frame)
                self.commit()
                path.unlink(missing_ok=True)
            except StorageError as exc:
                log.error("%s; %s is kept for later", exc, path)
            finally:
                handle.close()

    def _sync(self, identity: bytes, message: dict[str, Any]) -> None:
        if self._batch.database_away():
            return  # the database is away: the acknowledgement follows the commit
        self.commit()
        trial, execution = str(message["trial"]), counter(message["execution"], "execution")
        producer = str(message["producer"])
        seq = self._order.advance(trial, execution, producer, 1, 0)
        self._send(identity, protocol.ack(producer, seq))

    def _send(self, identity: bytes, message: dict[str, Any]) -> None:
        try:
            self._socket.send_multipart([identity, protocol.pack(message)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("could not answer a producer: %s", exc)

    # -- committing: see kleiod/batch.py ------------------------------------------

    def due_in(self) -> float | None:
        """Seconds until the batch must be committed; None when it is empty."""
        return self._batch.due_in()

    def database_away(self) -> bool:
        return self._batch.database_away()

    def ensure_database(self) -> None:
        """Fail fast while the database is away, rather than block the daemon's loop."""
        self._batch.ensure_database()

    def commit(self) -> None:
        """Write the daemon's spill and the batch, then acknowledge (see Committer.commit)."""
        self._batch.commit()

    def accepting(self) -> bool:
        """Whether to read producers now: not while memory holds twice the bound."""
        return self._batch.accepting()

    @property
    def database_error(self) -> str | None:
        """Why the database takes no writes now, or None."""
        return self._batch.database_error

    @property
    def back_at(self) -> float | None:
        """When the database last came back (time.monotonic), or None."""
        return self._batch.back_at

    def close(self) -> None:
        """At the daemon's stop: commit, or leave what cannot be written in the spill."""
        self._batch.close()
