"""Ingest: records from producers, batched into storage and acknowledged once committed.

Messages from one producer arrive in order on the ingest ROUTER socket, so
when a ``sync`` or ``query`` arrives, everything that producer sent before it
is in the current batch: committing the batch then answering is enough to
acknowledge all of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from kleio_client import protocol
from kleiod.errors import BadRequest, KleiodError, StorageError
from kleiod.storage.base import BlobWriter, RecordRow, Storage

log = logging.getLogger(__name__)

BATCH_ROWS = 20_000
BATCH_SECONDS = 0.02
RECORD_KINDS = frozenset({protocol.STATISTIC, protocol.ARTIFACT, protocol.OUTPUT})


@dataclass
class IngestCounters:
    committed: int = 0
    duplicates: int = 0
    refused_messages: int = 0
    refused_records: int = 0


@dataclass
class _Batch:
    rows: list[RecordRow] = field(default_factory=list)
    acks: dict[tuple[bytes, str], int] = field(default_factory=dict)
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    started: float = 0.0


class Ingest:
    """Owns the ingest socket's traffic: batching, acknowledgement, uploads."""

    def __init__(
        self,
        storage: Storage,
        socket: zmq.Socket,
        publish: Callable[[str, Any], None],
    ) -> None:
        self._storage = storage
        self._socket = socket
        self._publish = publish
        self._batch = _Batch()
        self._uploads: dict[str, BlobWriter] = {}
        self._current: dict[tuple[str, int], bool] = {}
        self.counters = IngestCounters()

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
            if isinstance(exc, StorageError):
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
            protocol.BLOB: self._blob,
            protocol.QUERY: self._query,
        }

    def _records(self, identity: bytes, message: dict[str, Any]) -> None:
        trial, execution = str(message["trial"]), int(message["execution"])
        producer, first = str(message["producer"]), int(message["seq"])
        items = message["records"]
        if not self._is_current(trial, execution):
            self.counters.refused_records += len(items)
            self._send(identity, protocol.refused(
                protocol.E_NOT_FOUND, f"execution {execution} of trial {trial} is not running"))
            return
        batch = self._batch
        if not batch.rows:
            batch.started = time.monotonic()
        for offset, (kind, body) in enumerate(items):
            if kind not in RECORD_KINDS:
                raise BadRequest(f"unknown record kind {kind!r}")
            packed = msgpack.packb(body, use_bin_type=True)
            batch.rows.append(RecordRow(trial, execution, producer, first + offset, kind, packed))
            if kind == protocol.OUTPUT:
                batch.outputs.append((trial, body))
        batch.acks[(identity, producer)] = first + len(items) - 1

    def _sync(self, identity: bytes, message: dict[str, Any]) -> None:
        self.commit()
        self._send(identity, protocol.ack(str(message["producer"]), int(message["seq"])))

    def _blob(self, identity: bytes, message: dict[str, Any]) -> None:
        upload = str(message["upload"])
        writer = self._uploads.get(upload)
        if writer is None:
            writer = self._uploads[upload] = self._storage.begin_blob(upload)
        data = message["data"]
        writer.write(int(message["offset"]), data)
        end = int(message["offset"]) + len(data)
        sha256 = None
        if message["last"]:
            sha256 = self._uploads.pop(upload).finish()
        self._send(identity, protocol.blob_ack(upload, end, sha256))

    def _query(self, identity: bytes, message: dict[str, Any]) -> None:
        self.commit()
        req = int(message["req"])
        if message["name"] != "load_artifact":
            raise BadRequest(f"unknown query {message['name']!r}")
        trial, execution = str(message["trial"]), int(message["execution"])
        args = message["args"]
        found = self._storage.find_artifact(trial, str(args["filename"]), dict(args["metadata"]))
        result = None
        if found is not None:
            self._note_load(trial, execution, str(message["producer"]), req, found)
            result = {**found, "path": self._storage.blob_path(found["sha256"])}
        self._send(identity, protocol.answer(req, result))

    def _note_load(self, trial: str, execution: int, producer: str, req: int,
                   found: dict[str, Any]) -> None:
        """Journal the load: the resume point is derived from these records."""
        body = {"filename": found["filename"], "sha256": found["sha256"],
                "artifact_position": found["position"]}
        row = RecordRow(trial, execution, producer + "/load", req, protocol.LOAD,
                        msgpack.packb(body, use_bin_type=True))
        self._storage.append_records([row])

    def _is_current(self, trial: str, execution: int) -> bool:
        key = (trial, execution)
        if not self._current.get(key):
            self._current[key] = self._storage.is_current_execution(trial, execution)
        return self._current[key]

    # -- committing -------------------------------------------------------------

    def due_in(self) -> float | None:
        """Seconds until the batch must be committed; None when it is empty."""
        if not self._batch.rows:
            return None
        if len(self._batch.rows) >= BATCH_ROWS:
            return 0.0
        return max(0.0, self._batch.started + BATCH_SECONDS - time.monotonic())

    def commit(self) -> None:
        batch = self._batch
        if not batch.rows and not batch.acks:
            return
        try:
            inserted = self._storage.append_records(batch.rows)
        except StorageError as exc:
            log.error("%s; keeping %d records to retry", exc, len(batch.rows))
            raise
        self._batch = _Batch()
        self.counters.committed += inserted
        self.counters.duplicates += len(batch.rows) - inserted
        for (identity, producer), seq in batch.acks.items():
            self._send(identity, protocol.ack(producer, seq))
        for trial, body in batch.outputs:
            self._publish(f"trial.{trial}.output", body)

    def forget_execution(self, trial: str, execution: int) -> None:
        self._current.pop((trial, execution), None)

    def _send(self, identity: bytes, message: dict[str, Any]) -> None:
        try:
            self._socket.send_multipart([identity, protocol.pack(message)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("could not answer a producer: %s", exc)
