"""Blob uploads: an artifact's bytes, streamed by a producer in chunks at offsets.

Owns the uploads in progress on the ingest socket, each named by its producer
and written through storage's blob writer, and their acknowledgements: each
chunk is answered with the offset the upload reached (and, after the last,
the content hash), or with why it cannot continue.  A refused chunk ends its
upload, so no spool is left open.
"""

from __future__ import annotations

import re
from typing import Any

from kleio_client import protocol
from kleiod.batch import Send
from kleiod.errors import BadRequest
from kleiod.ingest_message import counter
from kleiod.storage.base import BlobWriter, Storage

_UPLOAD_NAME = re.compile(r"[0-9A-Za-z_-]{1,64}")


class BlobUploads:
    """The uploads in progress, by name."""

    def __init__(self, storage: Storage, send: Send) -> None:
        self._storage = storage
        self._send = send
        self._uploads: dict[str, BlobWriter] = {}

    def take(self, identity: bytes, message: dict[str, Any]) -> None:
        """One chunk of an upload."""
        upload = str(message["upload"])
        try:
            self._chunk(identity, upload, message)
        except Exception:
            writer = self._uploads.pop(upload, None)
            if writer is not None:  # a refused chunk ends its upload: no spool left open
                writer.abort()
            raise

    def _chunk(self, identity: bytes, upload: str, message: dict[str, Any]) -> None:
        if not _UPLOAD_NAME.fullmatch(upload):
            raise BadRequest(
                f"an upload is named by 1 to 64 letters, digits, - or _; not {upload[:80]!r}"
            )
        offset, data = counter(message["offset"], "offset", low=0), message["data"]
        if not isinstance(data, bytes):
            raise BadRequest("blob data must be bytes")
        last = bool(message["last"])
        writer = self._uploads.get(upload)
        if writer is None and offset != 0:
            self._send(
                identity,
                protocol.blob_ack(
                    upload, offset, None, "this daemon never saw the upload's start (it restarted)"
                ),
            )
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
