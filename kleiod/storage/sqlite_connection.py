"""An open SQLite journal: where its file may live, its connection and transactions.

Owns opening the file (refused on a network filesystem unless allowed, and
then claimed for this machine), the busy timeout, the ``BEGIN IMMEDIATE``
transactions every write runs in (so two daemons sharing the file, or two
requests racing in one daemon, let exactly one execution run), closing, and
the translation of sqlite3 errors to StorageError, at the seam.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psutil

from kleiod.errors import ConfigError, StorageError
from kleiod.storage.blobs import FileBlobStore
from kleiod.storage.claim import HostClaim
from kleiod.storage.sqlite_schema import set_up

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "glusterfs",
        "fuse.sshfs",
        "ceph",
        "9p",
    }
)
BUSY_TIMEOUT_MS = 2000


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"SQLite failed while {what}: {exc}") from exc


def _filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path``: the last mount on its deepest mountpoint."""
    best, fstype = -1, ""
    for part in psutil.disk_partitions(all=True):
        mount = Path(part.mountpoint)
        if (path == mount or mount in path.parents) and len(mount.parts) >= best:
            best, fstype = len(mount.parts), part.fstype
    return fstype


def _network_claim(path: Path, allowed: bool) -> HostClaim | None:
    """None on a local filesystem; on a network one, refuse unless allowed, and then
    keep other machines off the file."""
    fstype = _filesystem_of(path.parent.resolve())
    if fstype not in NETWORK_FILESYSTEMS:
        return None
    if not allowed:
        raise ConfigError(
            f"{path} is on a network filesystem ({fstype}), where SQLite's WAL is unsafe; "
            "set KLEIO_DATABASE to a local sqlite:/// path or to a mongodb:// URL "
            "(or KLEIO_ALLOW_NETWORK_FILESYSTEM=1 if only this machine will ever write it)"
        )
    claim = HostClaim(path)
    try:
        claim.acquire()
    except OSError as exc:
        raise ConfigError(f"cannot claim {path} for this machine: {exc}") from None
    return claim


class SQLiteConnection:
    """One open journal file: its connection, its transactions, its artifacts."""

    def __init__(self, path: Path, allow_network_filesystem: bool = False) -> None:
        self.url = f"sqlite:///{path}"
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._claim = _network_claim(path, allow_network_filesystem)
        try:
            self.blobs = FileBlobStore(path.parent / "artifacts")
            with translated(f"opening {path}"):
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                # Short: another daemon holds the lock for a batch at most; a lock held for
                # long (another program) is a database error, retried with the records kept.
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                set_up(self._db)
        except BaseException:
            if self._claim is not None:  # another machine need not wait for it to go stale
                self._claim.release()
            raise

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        if self._claim is not None:
            self._claim.check()
        with translated(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with translated("closing the journal"):
            self._db.close()
        if self._claim is not None:
            self._claim.release()
