"""The embedded journal: one SQLite file in WAL mode, artifacts as files beside it.

``SQLiteStorage`` is the Storage interface over that file, put together from
one class per noun, each in its own module over one open connection
(``sqlite_connection``: the file, its transactions, the translation of
sqlite3 errors at the seam; its tables in ``sqlite_schema``):
``sqlite_executions`` (reservation, leases, status history),
``sqlite_records`` (chunks of records), ``sqlite_trials`` (queries of
trials, tags), ``sqlite_transfer`` (moving journals between databases) and
``sqlite_removal`` (removing trials).  Artifacts are content-addressed files
(``blobs``).
"""

from __future__ import annotations

from kleiod.storage.base import Blob, Leftovers, missing_artifact
from kleiod.storage.blobs import FileBlobWriter
from kleiod.storage.sqlite_executions import SQLiteExecutions
from kleiod.storage.sqlite_records import SQLiteRecords
from kleiod.storage.sqlite_removal import SQLiteRemoval
from kleiod.storage.sqlite_transfer import SQLiteTransfer


class SQLiteStorage(SQLiteExecutions, SQLiteRecords, SQLiteTransfer, SQLiteRemoval):
    """The Storage interface over one SQLite file."""

    def begin_blob(self, upload: str) -> FileBlobWriter:
        return self.blobs.begin(upload)

    def blob_path(self, sha256: str) -> str:
        path = self.blobs.path(sha256)
        if not path.is_file():
            raise missing_artifact(sha256, str(self.blobs.root))
        return str(path)

    def list_blobs(self) -> list[Blob]:
        return self.blobs.blobs()

    def delete_blob(self, sha256: str, stored_before: float) -> int | None:
        return self.blobs.delete(sha256, stored_before)

    def sweep_leftovers(self, before: float, dry_run: bool = False) -> Leftovers:
        return self.blobs.sweep(before, dry_run)
