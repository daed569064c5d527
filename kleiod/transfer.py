"""Moving trials between databases: ``kleio export`` and ``kleio import``.

An export file is a msgpack stream: a header with the trials (each with its
executions, captures and status history; ancestors of a branch included),
then their chunks of records in commit order, then their artifacts' bytes,
then an end mark.  Importing appends the chunks in that order, so positions
keep their order in the new database; positions that point at records (a
branch point, the artifact a resume loaded) are translated to the new ones.
Trials the target already has are left as they are; a new branch of one of them
points into the records the target holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from kleio_client import protocol
from kleiod.errors import ArtifactMissing, BadRequest, TrialNotFound
from kleiod.storage.base import POSITION_STRIDE, Storage

FORMAT = 1
CHUNKS_PER_BATCH = 500
BLOB_PIECE = 1024 * 1024


def export(storage: Storage, trial_ids: list[str], path: Path) -> dict[str, int]:
    ids = _with_ancestors(storage, trial_ids or [t["id"] for t in storage.list_trials()])
    trials = [storage.export_trial(i) for i in ids]
    chunks = blobs = 0
    shas: set[str] = set()
    with open(path, "wb") as handle:
        packer = msgpack.Packer(use_bin_type=True)
        handle.write(packer.pack({"kleio_export": FORMAT, "trials": trials}))
        batch: list[dict[str, Any]] = []
        for row in storage.export_chunks(ids):
            chunks += 1
            if row["kind"] == protocol.ARTIFACT:
                shas.update(pair[1]["sha256"] for pair in msgpack.unpackb(row["body"]))
            batch.append(row)
            if len(batch) >= CHUNKS_PER_BATCH:
                handle.write(packer.pack({"chunks": batch}))
                batch = []
        if batch:
            handle.write(packer.pack({"chunks": batch}))
        for sha in sorted(shas):
            blobs += 1
            for piece, last in _pieces(Path(storage.blob_path(sha))):
                handle.write(packer.pack({"blob": sha, "data": piece, "last": last}))
        handle.write(packer.pack({"end": True}))
    return {"trials": len(trials), "chunks": chunks, "artifacts": blobs}


def _with_ancestors(storage: Storage, ids: list[str]) -> list[str]:
    """The trials and every ancestor a branch reads, parents first."""
    ordered: list[str] = []

    def add(trial_id: str) -> None:
        if trial_id in ordered:
            return
        parent = storage.get_trial(trial_id)["parent"]
        if parent:
            add(parent)
        ordered.append(trial_id)

    for trial_id in ids:
        add(storage.resolve_id(trial_id))
    return ordered


def _pieces(path: Path) -> Iterator[tuple[bytes, bool]]:
    with open(path, "rb") as handle:
        piece = handle.read(BLOB_PIECE)
        while True:
            following = handle.read(BLOB_PIECE)
            yield piece, not following
            if not following:
                return
            piece = following


def import_(storage: Storage, path: Path) -> dict[str, int]:
    messages = _messages(path)
    header = next(messages, None)
    if not isinstance(header, dict) or header.get("kleio_export") != FORMAT:
        raise BadRequest(
            f"{path} is not a kleio export (format {FORMAT}); make one with `kleio export -o FILE`"
        )
    trials = [t for t in header["trials"] if not _exists(storage, t["id"])]
    new = {t["id"] for t in trials}
    mapping: dict[int, int] = {}
    chunks = blobs = offset = 0
    writer = None
    for message in messages:
        if "chunks" in message:
            mapping.update(_already_here(storage, message["chunks"], new))
            chunks += _import_batch(
                storage, [r for r in message["chunks"] if r["trial_id"] in new], mapping
            )
        elif "blob" in message:
            if writer is None and offset == 0 and _stored(storage, message["blob"]):
                offset = -1  # already here: its pieces are skipped, and it is not counted
            if offset >= 0:
                writer = writer or storage.begin_blob(f"import-{message['blob'][:16]}")
                writer.write(offset, message["data"])
                offset += len(message["data"])
            if message["last"]:
                if writer is not None:
                    writer.finish()
                    blobs += 1
                writer, offset = None, 0
        elif message.get("end"):
            break
    for trial in trials:
        if trial["branch_point"] is not None:
            trial["branch_point"] = _position(trial["branch_point"], mapping)
        storage.import_trial(trial)
    return {
        "trials": len(trials),
        "chunks": chunks,
        "artifacts": blobs,
        "skipped": len(header["trials"]) - len(trials),
    }


def _import_batch(storage: Storage, rows: list[dict[str, Any]], mapping: dict[int, int]) -> int:
    """Append rows in order; a load record is translated once what it points to is in."""
    pending: list[dict[str, Any]] = []
    for row in rows:
        if row["kind"] == protocol.LOAD:
            mapping.update(storage.import_chunks(pending))
            pending = []
            row = _translated(row, mapping)
        pending.append(row)
    mapping.update(storage.import_chunks(pending))
    return len(rows)


def _already_here(storage: Storage, rows: list[dict[str, Any]], new: set[str]) -> dict[int, int]:
    """Where the target holds the chunks of trials it had: a new branch of an old trial
    points into them."""
    found = {}
    for row in rows:
        if row["trial_id"] not in new:
            number = storage.chunk_number(
                row["trial_id"], row["execution"], row["producer"], row["seq"]
            )
            if number is not None:
                found[row["chunk"]] = number
    return found


def _messages(path: Path) -> Iterator[Any]:
    with open(path, "rb") as handle:
        unpacker = msgpack.Unpacker(
            handle, raw=False, strict_map_key=False, max_buffer_size=256 * 1024 * 1024
        )
        try:
            yield from unpacker
        except Exception as exc:  # msgpack raises several unrelated types  # noqa: BLE001
            raise BadRequest(
                f"{path} is not a kleio export, or is cut short ({type(exc).__name__}); "
                "make one with `kleio export -o FILE`"
            ) from None


def _stored(storage: Storage, sha256: str) -> bool:
    try:
        storage.blob_path(sha256)
    except ArtifactMissing:
        return False
    return True


def _exists(storage: Storage, trial_id: str) -> bool:
    try:
        storage.get_trial(trial_id)
    except TrialNotFound:
        return False
    return True


def _position(old: int, mapping: dict[int, int]) -> int:
    chunk, index = divmod(old, POSITION_STRIDE)
    return mapping.get(chunk, chunk) * POSITION_STRIDE + index


def _translated(row: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    """A load record names the artifact's position: the artifact's new one."""
    if row["kind"] != protocol.LOAD:
        return row
    pairs = msgpack.unpackb(row["body"], raw=False)
    for pair in pairs:
        pair[1]["artifact_position"] = _position(pair[1]["artifact_position"], mapping)
    return {**row, "body": msgpack.packb(pairs, use_bin_type=True)}
