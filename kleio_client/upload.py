"""Streaming an artifact's bytes to the daemon, a window of chunks at a time.

The file is read in ``protocol.BLOB_CHUNK_BYTES`` chunks, each sent through the
channel's I/O thread; every ``BLOB_WINDOW`` chunks the caller waits for the daemon's
acknowledgement, so that memory is bounded in bytes whatever the file's size.  The
daemon hashes what it stores; the hash it answers must be the one computed here.
A daemon that restarts mid-upload loses it: a seekable file is sent again from its
start, up to ``UPLOAD_TRIES`` times; anything else fails with a clear message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

from kleio_client import protocol
from kleio_client.errors import DaemonUnavailable

if TYPE_CHECKING:
    from kleio_client.channel import Channel

BLOB_WINDOW = 8
UPLOAD_TRIES = 3


class _UploadLost(Exception):
    """The daemon lost an upload in progress (it restarted): it must start again."""


def upload(channel: Channel, fileobj: BinaryIO) -> tuple[str, int]:
    """Stream ``fileobj`` through ``channel``; its sha256 and size once stored."""
    start = fileobj.tell() if fileobj.seekable() else None
    for attempt in range(1, UPLOAD_TRIES + 1):
        try:
            return _upload_once(channel, fileobj)
        except _UploadLost as exc:
            if start is None or attempt == UPLOAD_TRIES:
                raise DaemonUnavailable(
                    f"kleio: the artifact could not be stored: {exc}; log it again"
                ) from None
            fileobj.seek(start)
    raise AssertionError("unreachable")


def _upload_once(channel: Channel, fileobj: BinaryIO) -> tuple[str, int]:
    import hashlib  # here: OpenSSL costs a script that stores no artifact 3.5 MiB

    upload_id = os.urandom(16).hex()
    reconnections = channel.reconnections
    digest = hashlib.sha256()
    offset = 0
    chunks = 0
    while True:
        data = fileobj.read(protocol.BLOB_CHUNK_BYTES)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("log_artifact needs a binary file object (open it with 'rb')")
        data = bytes(data)
        last = len(data) < protocol.BLOB_CHUNK_BYTES
        digest.update(data)
        channel.send_later(protocol.pack(protocol.blob(upload_id, offset, data, last)))
        offset += len(data)
        chunks += 1
        if last or chunks % BLOB_WINDOW == 0:
            _wait_blob(channel, upload_id, offset, last, reconnections)
        if last:
            break
    stored = channel.blob_acks.pop(upload_id)["sha256"]
    if stored != digest.hexdigest():
        raise DaemonUnavailable("kleio: the daemon stored different bytes than were sent")
    return stored, offset


def _wait_blob(
    channel: Channel, upload_id: str, offset: int, last: bool, reconnections: int
) -> None:
    def acked() -> bool:
        if channel.reconnections != reconnections:
            raise _UploadLost("the daemon restarted during the upload")
        ack = channel.blob_acks.get(upload_id)
        if ack is not None and ack.get("error"):
            channel.blob_acks.pop(upload_id)
            raise _UploadLost(str(ack["error"]))
        # The last chunk may be empty (a size that is a multiple of the chunk): wait for
        # the ack that closes the upload, not one for the same offset before it.
        return (
            ack is not None
            and int(ack["offset"]) >= offset
            and (not last or ack.get("sha256") is not None)
        )

    channel.wait(acked, "storing an artifact")
