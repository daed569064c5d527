"""What uploads and deletions of artifacts cut short leave behind, swept by `kleio gc`
(``Storage.sweep_leftovers``): on both backends, and the crash leftovers each has of its
own (a file moved aside; GridFS chunks no file names), made as a killed daemon leaves
them.  Stored bytes are never lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pymongo
import pytest

from kleiod.storage import open_storage
from kleiod.storage.base import Leftovers

HOUR = 3600.0


def _stored(storage, payload: bytes, upload: str = "up") -> str:
    writer = storage.begin_blob(upload)
    writer.write(0, payload)
    return str(writer.finish())


def _stored_shas(storage) -> set[str]:
    return {blob.sha256 for blob in storage.list_blobs()}


def test_an_upload_cut_short_is_swept_once_old_and_stored_bytes_stay(
    database_url: str, tmp_path: Path
):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    kept = _stored(storage, b"weights")
    cut = storage.begin_blob("cut-short")
    cut.write(0, b"half a checkpoint")  # and the daemon is killed: never finished
    assert storage.sweep_leftovers(storage.clock() - HOUR) == Leftovers()  # too recent
    later = storage.clock() + HOUR  # an hour on: the spool untouched since
    assert storage.sweep_leftovers(later, dry_run=True).pieces == 1
    assert storage.sweep_leftovers(later).pieces == 1  # (its bytes: what reached the disk)
    assert storage.sweep_leftovers(later) == Leftovers()  # gone
    assert _stored_shas(storage) == {kept}
    with open(storage.blob_path(kept), "rb") as handle:
        assert handle.read() == b"weights"
    assert _stored(storage, b"weights", "again") == kept  # uploads go on as before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bytes_a_deletion_moved_aside_go_back_or_go_when_stored_again(
    database_url: str, tmp_path: Path
):
    storage = open_storage(database_url)
    sha = _stored(storage, b"weights")
    place = Path(storage.blob_path(sha))
    aside = place.parent.parent / "tmp" / f"{sha}.0123.gc"
    place.rename(aside)  # a deletion killed after it moved the file aside
    assert storage.sweep_leftovers(storage.clock() - HOUR) == Leftovers()
    assert place.read_bytes() == b"weights" and not aside.exists()  # back: judged next gc
    shutil.copy(place, aside)  # ... and killed once the same bytes were stored again
    assert storage.sweep_leftovers(storage.clock() - HOUR) == Leftovers(1, 7)
    assert place.read_bytes() == b"weights" and not aside.exists()
    assert _stored_shas(storage) == {sha}


@pytest.mark.parametrize("database_url", ["mongodb"], indirect=True)
def test_gridfs_chunks_no_file_names_are_swept_once_old(database_url: str, tmp_path: Path):
    storage = open_storage(database_url, cache_dir=tmp_path / "cache")
    kept = _stored(storage, b"weights")
    orphan = _stored(storage, b"a deleted checkpoint")
    database = pymongo.MongoClient(database_url).get_default_database()
    database["artifacts.files"].delete_many({"filename": orphan})  # killed before its chunks
    assert orphan == hashlib.sha256(b"a deleted checkpoint").hexdigest()
    assert storage.sweep_leftovers(storage.clock() - HOUR) == Leftovers()  # too recent
    assert storage.sweep_leftovers(storage.clock() + HOUR) == Leftovers(1, 20)
    assert database["artifacts.chunks"].count_documents({}) == 1  # the kept file's one chunk
    assert _stored_shas(storage) == {kept}
    with open(storage.blob_path(kept), "rb") as handle:
        assert handle.read() == b"weights"
