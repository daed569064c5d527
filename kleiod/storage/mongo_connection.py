"""An open MongoDB journal: the client, the database, its indexes and its GridFS bucket.

Owns connecting (with a short server selection timeout, then a ping, so an
unreachable server is said at once), the indexes every collection relies on
(the unique key of a chunk of records on (trial, execution, producer, seq)
among them), the bucket artifacts are kept in, the server's clock (on which
leases are measured, whatever the clocks of the daemons' machines say), whether
the deployment runs transactions (a replica set or a sharded cluster: what
fences the writes of records), closing, and the translation
of pymongo errors to StorageError, at the seam, with the URL's credentials
redacted.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError

from kleio_runtime.config import redact
from kleiod.errors import StorageError

SERVER_TIMEOUT_MS = 2000


@contextlib.contextmanager
def _translated(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except PyMongoError as exc:
        raise StorageError(
            f"MongoDB at {redact(url)} failed while {what}: {_said(exc)}; check that the "
            "server runs and is reachable, and the credentials in KLEIO_DATABASE"
        ) from exc


def _said(exc: PyMongoError) -> str:
    """What went wrong, in words (pymongo's class names are not)."""
    if isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        return f"no server answered within {SERVER_TIMEOUT_MS / 1000:g} s"
    if isinstance(exc, pymongo.errors.OperationFailure) and exc.code in (13, 18):
        return "authentication failed or not authorized"
    if isinstance(exc, pymongo.errors.AutoReconnect):
        return "the connection was lost"
    return str(exc).split(", full error")[0][:200] or type(exc).__name__


class MongoConnection:
    """One MongoDB database, connected and indexed."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        self.url = url
        self._cache = cache_dir
        with _translated("connecting", url):
            self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=False
            )
            self._db = self._client.get_default_database(default="kleio")
            hello = self._client.admin.command("hello")
            self._ensure_indexes()
        # Transactions need a replica set (one node will do) or mongos.
        self.transactions = "setName" in hello or hello.get("msg") == "isdbgrid"
        import gridfs

        self._blobs = gridfs.GridFSBucket(self._db, bucket_name="artifacts")

    def _ensure_indexes(self) -> None:
        self._db.trials.create_index([("root", 1)])
        self._db.executions.create_index([("trial_id", 1), ("number", 1)], unique=True)
        self._db.history.create_index([("trial_id", 1), ("at", 1)])
        self._db.chunks.create_index(
            [("trial_id", 1), ("execution", 1), ("producer", 1), ("seq", 1)], unique=True
        )
        self._db.chunks.create_index([("trial_id", 1), ("kind", 1), ("chunk", 1)])

    def clock(self) -> float:
        """The server's time, in seconds since the epoch (to the millisecond)."""
        with self._t("reading the server's clock"):
            now = self._client.admin.command("hello")["localTime"]
        return float(now.replace(tzinfo=datetime.timezone.utc).timestamp())

    def _t(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _translated(what, self.url)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[ClientSession | None]:
        """A session in a transaction, committed at the end (aborted on an error), or None
        where the deployment runs no transaction.  One try: not pymongo's
        ``with_transaction``, which retries a server that went away for two minutes;
        each caller says what a conflict means to it."""
        if not self.transactions:
            yield None
            return
        with self._client.start_session() as session, session.start_transaction():
            yield session

    def close(self) -> None:
        self._client.close()
