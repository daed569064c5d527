"""Ingest: records from producers, batched into storage and acknowledged once committed.

Messages from one producer arrive in order on the ingest ROUTER socket, so
when a ``sync`` or ``query`` arrives, everything that producer sent before it
is in the current batch: committing the batch then answering is enough to
acknowledge all of it.  The checks of a message are in ingest_message, the
order per producer in producer_order, the batch and its acknowledgements in
batch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import zmq

from kleio_client import protocol, spill
from kleio_client.segments import collection_paused
from kleiod import columns, history
from kleiod.batch import BATCH_RECORDS, BATCH_SECONDS, MAX_BACKOFF, Committer, IngestCounters
from kleiod.errors import BadRequest, KleiodError, StorageError
from kleiod.ingest_message import RECORD_KINDS, checked_records, counter
from kleiod.live import Live
from kleiod.producer_order import ProducerOrder
from kleiod.spill import Spill
from kleiod.storage.base import BlobWriter, Chunk, Storage

__all__ = ["BATCH_RECORDS", "BATCH_SECONDS", "MAX_BACKOFF", "RECORD_KINDS", "Buffering",
           "Ingest", "IngestCounters"]

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
        self._storage = storage
        self._socket = socket
        self.live = live
        self.spill = buffering.spill
        self._producer_spills = buffering.producer_spills
        self.counters = IngestCounters()
        self._order = ProducerOrder(storage, self.spill)
        self._batch = Committer(storage, live, self.spill, buffering.hold_bytes,
                                self.counters, self._send)
        self._uploads: dict[str, BlobWriter] = {}

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
            protocol.BLOB: self._blob,
            protocol.QUERY: self._query,
        }

    def _records(self, identity: bytes, message: dict[str, Any]) -> None:
        trial, execution = str(message["trial"]), counter(message["execution"], "execution")
        producer, first = str(message["producer"]), counter(message["seq"], "seq")
        records = checked_records(message["records"])
        if not self._order.in_order(trial, execution, producer, first):
            self.counters.out_of_order += 1
            return
        acked = self._order.advance(trial, execution, producer, first, len(records.kinds))
        self._batch.add(identity, producer, records.chunks(trial, execution, producer, first),
                        len(records.packed), acked)

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

    def _blob(self, identity: bytes, message: dict[str, Any]) -> None:
        upload = str(message["upload"])
        try:
            self._blob_chunk(identity, upload, message)
        except Exception:
            writer = self._uploads.pop(upload, None)
            if writer is not None:  # a refused chunk ends its upload: no spool left open
                writer.abort()
            raise

    def _blob_chunk(self, identity: bytes, upload: str, message: dict[str, Any]) -> None:
        if not _UPLOAD_NAME.fullmatch(upload):
            raise BadRequest(f"an upload is named by 1 to 64 letters, digits, - or _; "
                             f"not {upload[:80]!r}")
        offset, data = counter(message["offset"], "offset", low=0), message["data"]
        if not isinstance(data, bytes):
            raise BadRequest("blob data must be bytes")
        last = bool(message["last"])
        writer = self._uploads.get(upload)
        if writer is None and offset != 0:
            self._send(identity, protocol.blob_ack(
                upload, offset, None, "this daemon never saw the upload's start (it restarted)"))
            return
        if writer is None:
            writer = self._uploads[upload] = self._storage.begin_blob(upload)
        try:
            writer.write(offset, data)
        except BadRequest as exc:
            self._uploads.pop(upload).abort()
            self._send(identity, protocol.blob_ack(upload, offset, None, str(exc)))
            return
        end = offset + len(data)
        sha256 = None
        if last:
            sha256 = self._uploads.pop(upload).finish()
        self._send(identity, protocol.blob_ack(upload, end, sha256))

    def _query(self, identity: bytes, message: dict[str, Any]) -> None:
        """A script asks about its trial: answered from the effective history it sees."""
        self.commit()
        req = counter(message["req"], "req")
        trial, execution = str(message["trial"]), counter(message["execution"], "execution")
        args = dict(message["args"])
        name = message["name"]
        if name == "statistics":  # stored chunks: the script unpacks and filters them
            with collection_paused():
                segments = history.statistic_segments(self._storage, trial,
                                                      bodies=bool(args.get("bodies", True)))
            self._send(identity, protocol.answer(req, {"segments": segments}))
            return
        if name == "chunks":  # their bodies, a page at a time
            bodies = columns.bodies(self._storage, list(args["segments"]))
            self._send(identity, protocol.answer(req, bodies))
            return
        if name == protocol.SIGNAL:
            self._journal_signal(trial, execution, str(message["producer"]), req, args)
            self._send(identity, protocol.answer(req, None))
            return
        loading = execution if name == "load_artifact" else None
        with collection_paused():
            seen = history.effective(self._storage, trial, loading=loading, statistics=False)
        if name == "load_artifact":
            found = history.artifacts(seen, str(args["filename"]), dict(args["metadata"]))
            result: Any = None
            if found:
                self._note_load(trial, execution, str(message["producer"]), req, found[-1])
                result = self._artifact(found[-1])
        elif name == "artifacts":
            filename = args.get("filename")
            result = [self._artifact(r) for r in history.artifacts(
                seen, None if filename is None else str(filename), dict(args["metadata"]))]
        else:
            raise BadRequest(f"unknown query {name!r}")
        self._send(identity, protocol.answer(req, result))

    def _artifact(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record["body"], "position": record["position"], "trial": record["trial"],
                "execution": record["execution"],
                "path": self._storage.blob_path(record["body"]["sha256"])}

    def _note_load(self, trial: str, execution: int, producer: str, req: int,
                   found: dict[str, Any]) -> None:
        """Journal the load: the execution's resume point is derived from these records."""
        body = {"filename": found["body"]["filename"], "sha256": found["body"]["sha256"],
                "artifact_position": found["position"]}
        chunk = Chunk(trial, execution, producer + "/load", req, 1, protocol.LOAD,
                      msgpack.packb([[protocol.LOAD, body]], use_bin_type=True))
        self._storage.append_chunks([chunk])

    def _journal_signal(self, trial: str, execution: int, producer: str, req: int,
                        args: dict[str, Any]) -> None:
        """A process of the execution received SIGINT or SIGTERM (see protocol.SIGNAL)."""
        name = str(args["signal"])
        if name not in ("SIGINT", "SIGTERM"):
            raise BadRequest(f"a signal note names SIGINT or SIGTERM, not {name[:20]!r}")
        body = {"signal": name, "pid": counter(args["pid"], "pid")}
        chunk = Chunk(trial, execution, producer + "/signal", req, 1, protocol.SIGNAL,
                      msgpack.packb([[protocol.SIGNAL, body]], use_bin_type=True))
        self._storage.append_chunks([chunk])

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


_UPLOAD_NAME = re.compile(r"[0-9A-Za-z_-]{1,64}")
