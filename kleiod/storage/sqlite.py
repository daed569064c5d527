"""The embedded journal: one SQLite file in WAL mode, artifacts as files beside it.

Reservation is one ``BEGIN IMMEDIATE`` transaction, so two daemons sharing
the file (or two requests racing in one daemon) let exactly one execution
run.  sqlite3 errors are translated to StorageError here, at the seam.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import psutil

from kleio_client import protocol
from kleiod import states
from kleiod.errors import (
    ConfigError,
    StorageError,
    TrialNotFound,
)
from kleiod.storage.base import (
    POSITION_STRIDE,
    Appended,
    Chunk,
    Claim,
    ExecutionEnd,
    Reservation,
    TrialSpec,
    already_running,
    completed,
    id_prefix,
    the_one,
    uncovered_parts,
)
from kleiod.storage.blobs import FileBlobStore, FileBlobWriter
from kleiod.storage.claim import HostClaim

SCHEMA_VERSION = 3
OPEN_RETRY_SECONDS = 10.0
# Columns added after a table first shipped: added in place to older journals.
ADDED_COLUMNS = (
    ("trials", "root", "TEXT"),
    ("trials", "branch_kind", "TEXT"),
    ("trials", "branch_point", "INTEGER"),
    ("executions", "capture", "TEXT"),
    ("trials", "tags", "TEXT"),
)
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "glusterfs",
     "fuse.sshfs", "ceph", "9p"}
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    parent TEXT,
    status TEXT NOT NULL,
    command TEXT NOT NULL,
    identity TEXT NOT NULL,
    cwd TEXT NOT NULL,
    user TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    executions INTEGER NOT NULL DEFAULT 0,
    owner_host TEXT,
    owner_pid INTEGER,
    owner_since REAL,
    lease_until REAL,
    root TEXT,
    branch_kind TEXT,
    branch_point INTEGER,
    tags TEXT
);
CREATE INDEX IF NOT EXISTS trials_by_root ON trials (root);
CREATE TABLE IF NOT EXISTS executions (
    trial_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER,
    started REAL NOT NULL,
    ended REAL,
    exit_code INTEGER,
    status TEXT NOT NULL,
    signals TEXT NOT NULL DEFAULT '[]',
    capture TEXT,
    PRIMARY KEY (trial_id, number)
);
CREATE TABLE IF NOT EXISTS status_history (
    trial_id TEXT NOT NULL,
    execution INTEGER NOT NULL,
    status TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS status_history_by_trial ON status_history (trial_id, at);
CREATE TABLE IF NOT EXISTS chunks (
    chunk INTEGER PRIMARY KEY,
    trial_id TEXT NOT NULL,
    execution INTEGER NOT NULL,
    producer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (trial_id, execution, producer, seq)
);
CREATE INDEX IF NOT EXISTS chunks_by_kind ON chunks (trial_id, kind, chunk);
"""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
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


BUSY_TIMEOUT_MS = 2000


class SQLiteStorage:
    """The Storage interface over one SQLite file."""

    def __init__(self, path: Path, allow_network_filesystem: bool = False) -> None:
        self.url = f"sqlite:///{path}"
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._claim = _network_claim(path, allow_network_filesystem)
        try:
            self.blobs = FileBlobStore(path.parent / "artifacts")
            with _translated(f"opening {path}"):
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                # Short: another daemon holds the lock for a batch at most; a lock held for
                # long (another program) is a database error, retried with the records kept.
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self._set_up()
        except BaseException:
            if self._claim is not None:  # another machine need not wait for it to go stale
                self._claim.release()
            raise

    def _set_up(self) -> None:
        """WAL mode and the schema.  Switching to WAL does not wait on the busy handler,
        so two daemons opening a new file at once retry for a while."""
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._add_missing_columns()
                self._db.executescript(SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _add_missing_columns(self) -> None:
        for table, column, declaration in ADDED_COLUMNS:
            existing = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if existing and column not in existing:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        if self._claim is not None:
            self._claim.check()
        with _translated(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- trials and executions ----------------------------------------------------

    def reserve(self, spec: TrialSpec, claim: Claim,
                capture: dict[str, Any] | None = None) -> Reservation:
        with self._transaction(f"reserving trial {spec.id}") as db:
            row = db.execute(
                "SELECT status, executions, owner_host, owner_pid, owner_since, lease_until "
                "FROM trials WHERE id = ?",
                (spec.id,),
            ).fetchone()
            previous = None if row is None else row[0]
            if row is None:
                db.execute(
                    "INSERT INTO trials (id, parent, status, command, identity, cwd, user, "
                    "created, updated, root, branch_kind, branch_point) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (spec.id, spec.parent, states.NEW, json.dumps(spec.command),
                     json.dumps(spec.identity, sort_keys=True), spec.cwd, spec.user,
                     claim.now, claim.now, spec.root or spec.id, spec.branch_kind,
                     spec.branch_point),
                )
                self._history(db, spec.id, 0, states.NEW, claim.now)
                executions = 0
            else:
                executions = row[1]
                previous = self._check_reservable(db, spec.id, row, claim)
            execution = executions + 1
            db.execute(
                "UPDATE trials SET status = ?, executions = ?, owner_host = ?, owner_pid = ?, "
                "owner_since = ?, lease_until = ?, updated = ? WHERE id = ?",
                (states.RUNNING, execution, claim.host, claim.pid, claim.now,
                 claim.lease_until, claim.now, spec.id),
            )
            db.execute(
                "INSERT INTO executions (trial_id, number, host, pid, started, status, capture) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (spec.id, execution, claim.host, claim.pid, claim.now, states.RUNNING,
                 None if capture is None else json.dumps(capture)),
            )
            self._history(db, spec.id, execution, states.RUNNING, claim.now)
        return Reservation(spec.id, execution, previous)

    def _check_reservable(
        self, db: sqlite3.Connection, trial_id: str, row: tuple[Any, ...], claim: Claim
    ) -> str:
        status, executions, host, pid, since, lease_until = row
        if status == states.COMPLETED:
            raise completed(trial_id)
        if status == states.RUNNING:
            if lease_until is not None and lease_until >= claim.now:
                raise already_running(trial_id, host, pid, since)
            db.execute(
                "UPDATE executions SET status = ?, ended = ? WHERE trial_id = ? AND number = ?",
                (states.LOST, claim.now, trial_id, executions),
            )
            self._history(db, trial_id, executions, states.LOST, claim.now)
            return states.LOST
        return str(status)

    @staticmethod
    def _history(db: sqlite3.Connection, trial_id: str, execution: int, status: str,
                 at: float) -> None:
        db.execute("INSERT INTO status_history VALUES (?, ?, ?, ?)",
                   (trial_id, execution, status, at))

    def start_execution(self, trial_id: str, execution: int, pid: int) -> None:
        with self._transaction("recording an execution's start") as db:
            db.execute("UPDATE executions SET pid = ? WHERE trial_id = ? AND number = ?",
                       (pid, trial_id, execution))
            db.execute("UPDATE trials SET owner_pid = ? WHERE id = ? AND executions = ?",
                       (pid, trial_id, execution))

    def renew_lease(self, trial_id: str, execution: int, until: float) -> bool:
        """Renew the latest execution's lease; one declared lost while alive (a paused
        machine) runs again, as long as no other execution took the trial over."""
        with self._transaction("renewing a lease") as db:
            row = db.execute("SELECT status FROM trials WHERE id = ? AND executions = ?",
                             (trial_id, execution)).fetchone()
            if row is None or row[0] not in (states.RUNNING, states.LOST):
                return False
            db.execute("UPDATE trials SET lease_until = ?, status = ? WHERE id = ?",
                       (until, states.RUNNING, trial_id))
            if row[0] == states.LOST:
                db.execute("UPDATE executions SET status = ?, ended = NULL "
                           "WHERE trial_id = ? AND number = ?",
                           (states.RUNNING, trial_id, execution))
                self._history(db, trial_id, execution, states.RUNNING, until)
        return True

    def end_execution(self, end: ExecutionEnd) -> None:
        with self._transaction("recording an execution's end") as db:
            db.execute(
                "UPDATE executions SET ended = ?, exit_code = ?, signals = ?, "
                "status = CASE WHEN status IN ('running', 'lost') THEN ? ELSE status END "
                "WHERE trial_id = ? AND number = ?",
                (end.now, end.exit_code, json.dumps(end.signals), end.status, end.trial_id,
                 end.execution),
            )
            cursor = db.execute(
                "UPDATE trials SET status = ?, updated = ?, lease_until = NULL "
                "WHERE id = ? AND executions = ? AND status IN ('running', 'lost')",
                (end.status, end.now, end.trial_id, end.execution),
            )
            if cursor.rowcount:
                self._history(db, end.trial_id, end.execution, end.status, end.now)

    def expire_leases(self, now: float) -> list[str]:
        with self._transaction("expiring leases") as db:
            rows = db.execute(
                "SELECT id, executions FROM trials WHERE status = ? AND lease_until < ?",
                (states.RUNNING, now),
            ).fetchall()
            for trial_id, execution in rows:
                db.execute("UPDATE trials SET status = ?, updated = ?, lease_until = NULL "
                           "WHERE id = ?", (states.LOST, now, trial_id))
                db.execute("UPDATE executions SET status = ?, ended = ? "
                           "WHERE trial_id = ? AND number = ?",
                           (states.LOST, now, trial_id, execution))
                self._history(db, trial_id, execution, states.LOST, now)
        return [row[0] for row in rows]

    # -- records ----------------------------------------------------------------------

    def append_chunks(self, chunks: Sequence[Chunk]) -> Appended:
        inserted = 0
        refused: set[tuple[str, int]] = set()
        owners: dict[tuple[str, int], bool] = {}
        stored: list[tuple[int, Chunk]] = []
        with self._transaction(f"writing {len(chunks)} chunks of records") as db:
            for chunk in chunks:
                key = (chunk.trial_id, chunk.execution)
                if key not in owners:
                    owners[key] = self._owns(db, *key)
                if not owners[key]:
                    refused.add(key)
                    continue
                for part in self._uncovered(db, chunk):
                    cursor = db.execute(
                        "INSERT INTO chunks (trial_id, execution, producer, seq, count, kind, "
                        "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (part.trial_id, part.execution, part.producer, part.seq, part.count,
                         part.kind, part.body),
                    )
                    inserted += part.count
                    stored.append((int(cursor.lastrowid or 0) * POSITION_STRIDE, part))
        return Appended(inserted, refused, tuple(stored))

    @staticmethod
    def _owns(db: sqlite3.Connection, trial_id: str, execution: int) -> bool:
        """The fencing check: only the trial's latest execution may write."""
        row = db.execute("SELECT executions FROM trials WHERE id = ?", (trial_id,)).fetchone()
        return row is not None and row[0] == execution

    @staticmethod
    def _uncovered(db: sqlite3.Connection, chunk: Chunk) -> list[Chunk]:
        """The parts of ``chunk`` whose records are not stored yet (a resend stores nothing)."""
        last = chunk.seq + chunk.count - 1
        stored = db.execute(
            "SELECT seq, count FROM chunks WHERE trial_id = ? AND execution = ? AND producer = ? "
            "AND seq BETWEEN ? AND ? AND seq + count > ?",
            (chunk.trial_id, chunk.execution, chunk.producer,
             chunk.seq - protocol.MAX_RECORDS_PER_MESSAGE, last, chunk.seq),
        ).fetchall()
        return uncovered_parts(chunk, stored)

    def logged_counts(self, trial_id: str, kinds: Iterable[str],
                      upto: int | None = None) -> dict[int, int]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        last_chunk = None if upto is None else upto // POSITION_STRIDE
        with _translated("counting records"):
            rows = self._db.execute(
                f"SELECT execution, sum(count) FROM chunks WHERE trial_id = ? AND kind IN "
                f"({marks}) AND (? IS NULL OR chunk <= ?) GROUP BY execution",
                (trial_id, *kinds, last_chunk, last_chunk)).fetchall()
        return {int(e): int(n) for e, n in rows}

    def last_seq(self, trial_id: str, execution: int, producer: str) -> int:
        with _translated("reading a producer's last record"):
            row = self._db.execute(
                "SELECT max(seq + count - 1) FROM chunks WHERE trial_id = ? AND execution = ? "
                "AND producer = ?", (trial_id, execution, producer)).fetchone()
        return int(row[0] or 0)

    def read_chunks(self, trial_id: str, kinds: Iterable[str], upto: int | None = None,
                    bodies: bool = True, positions: Sequence[int] | None = None
                    ) -> list[dict[str, Any]]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        last_chunk = None if upto is None else upto // POSITION_STRIDE
        body = "body" if bodies else "NULL"
        chosen = [] if positions is None else [p // POSITION_STRIDE for p in positions]
        among = "" if positions is None else f" AND chunk IN ({','.join('?' * len(chosen))})"
        with _translated("reading records"):
            rows = self._db.execute(
                f"SELECT chunk, execution, count, {body} FROM chunks WHERE trial_id = ? AND "
                f"kind IN ({marks}) AND (? IS NULL OR chunk <= ?){among} ORDER BY chunk",
                (trial_id, *kinds, last_chunk, last_chunk, *chosen)).fetchall()
        return [{"position": c * POSITION_STRIDE, "execution": e, "count": n, "body": b}
                for c, e, n, b in rows]

    def read_records(self, trial_id: str, kinds: Iterable[str],
                     after: int | None = None) -> list[dict[str, Any]]:
        kinds = list(kinds)
        marks = ",".join("?" * len(kinds))
        first_chunk = -1 if after is None else after // POSITION_STRIDE
        with _translated("reading records"):
            rows = self._db.execute(
                "SELECT chunk, execution, producer, seq, kind, body FROM chunks "
                f"WHERE trial_id = ? AND kind IN ({marks}) AND chunk >= ? ORDER BY chunk",
                (trial_id, *kinds, first_chunk),
            ).fetchall()
        records = [
            {"position": chunk * POSITION_STRIDE + i, "execution": e, "producer": pr,
             "seq": seq + i, "kind": k, "body": pair[1]}
            for chunk, e, pr, seq, k, b in rows
            for i, pair in enumerate(msgpack.unpackb(b, raw=False))
        ]
        return records if after is None else [r for r in records if r["position"] > after]

    # -- blobs ----------------------------------------------------------------------------

    def begin_blob(self, upload: str) -> FileBlobWriter:
        return self.blobs.begin(upload)

    def blob_path(self, sha256: str) -> str:
        return str(self.blobs.path(sha256))

    # -- queries --------------------------------------------------------------------------

    def candidates(self, root: str) -> list[dict[str, Any]]:
        with _translated("reading a trial's branches"):
            rows = self._db.execute(
                "SELECT id, status, updated, parent, branch_kind FROM trials WHERE (id = ? OR "
                "root = ?) AND (branch_kind IS NULL OR branch_kind = 'change') ORDER BY updated",
                (root, root),
            ).fetchall()
        return [{"id": i, "status": s, "updated": u, "parent": p, "branch_kind": k,
                 "capture": self.capture(i)} for i, s, u, p, k in rows]

    def capture(self, trial_id: str, execution: int | None = None) -> dict[str, Any] | None:
        """The capture of an execution (default: the latest that has one)."""
        with _translated("reading a capture"):
            if execution is None:
                row = self._db.execute(
                    "SELECT capture FROM executions WHERE trial_id = ? AND capture IS NOT NULL "
                    "ORDER BY number DESC LIMIT 1", (trial_id,)).fetchone()
            else:
                row = self._db.execute(
                    "SELECT capture FROM executions WHERE trial_id = ? AND number = ?",
                    (trial_id, execution)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def end_position(self, trial_id: str) -> int | None:
        """The position of the last record of the trial's own history, if any."""
        with _translated("reading the end of a history"):
            row = self._db.execute(
                "SELECT chunk, count FROM chunks WHERE trial_id = ? ORDER BY chunk DESC LIMIT 1",
                (trial_id,)).fetchone()
            if row is not None:
                return int(row[0] * POSITION_STRIDE + row[1] - 1)
            point = self._db.execute("SELECT branch_point FROM trials WHERE id = ?",
                                     (trial_id,)).fetchone()
        return None if point is None else point[0]

    def resolve_id(self, prefix: str) -> str:
        low = id_prefix(prefix)
        with _translated("resolving an id"):
            rows = self._db.execute("SELECT id FROM trials WHERE id >= ? AND id < ? LIMIT 2",
                                    (low, low + "g")).fetchall()
        return the_one(prefix, [row[0] for row in rows])

    def list_trials(self) -> list[dict[str, Any]]:
        with _translated("listing trials"):
            rows = self._db.execute(
                "SELECT id, status, command, created, updated, parent, owner_host, executions, "
                "branch_kind, tags FROM trials ORDER BY created"
            ).fetchall()
        return [
            {"id": i, "status": s, "command": json.loads(c), "created": cr, "updated": u,
             "parent": p, "host": h, "executions": n, "branch_kind": k,
             "tags": json.loads(t) if t else []}
            for i, s, c, cr, u, p, h, n, k, t in rows
        ]

    def set_tags(self, trial_id: str, add: Sequence[str], remove: Sequence[str]) -> list[str]:
        with self._transaction(f"tagging trial {trial_id}") as db:
            row = db.execute("SELECT tags FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None:
                raise TrialNotFound(f"no trial {trial_id}")
            tags = sorted((set(json.loads(row[0]) if row[0] else []) | set(add)) - set(remove))
            db.execute("UPDATE trials SET tags = ? WHERE id = ?", (json.dumps(tags), trial_id))
        return tags

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        with _translated("reading a trial"):
            row = self._db.execute(
                "SELECT id, status, command, identity, cwd, user, created, updated, parent, "
                "owner_host, owner_pid, owner_since, root, branch_kind, branch_point, tags "
                "FROM trials WHERE id = ?",
                (trial_id,),
            ).fetchone()
            if row is None:
                raise TrialNotFound(f"no trial {trial_id}")
            executions = self._db.execute(
                "SELECT number, host, pid, started, ended, exit_code, status, signals "
                "FROM executions WHERE trial_id = ? ORDER BY number",
                (trial_id,),
            ).fetchall()
            history = self._db.execute(
                "SELECT execution, status, at FROM status_history WHERE trial_id = ? "
                "ORDER BY rowid",
                (trial_id,),
            ).fetchall()
        keys = ("id", "status", "command", "identity", "cwd", "user", "created", "updated",
                "parent", "host", "pid", "since", "root", "branch_kind", "branch_point", "tags")
        trial = dict(zip(keys, row, strict=True))
        trial["tags"] = json.loads(trial["tags"]) if trial["tags"] else []
        trial["command"] = json.loads(trial["command"])
        trial["identity"] = json.loads(trial["identity"])
        trial["executions"] = [
            {"number": n, "host": h, "pid": p, "start": s, "end": e, "exit_code": x,
             "status": st, "signals": json.loads(sg)}
            for n, h, p, s, e, x, st, sg in executions
        ]
        trial["history"] = [{"execution": e, "status": s, "at": a} for e, s, a in history]
        return trial

    # -- moving journals between databases --------------------------------------------

    def export_trial(self, trial_id: str) -> dict[str, Any]:
        trial = self.get_trial(trial_id)
        with _translated("exporting a trial"):
            trial["captures"] = {
                number: json.loads(text) for number, text in self._db.execute(
                    "SELECT number, capture FROM executions WHERE trial_id = ? AND capture "
                    "IS NOT NULL", (trial_id,))}
        return trial

    def export_chunks(self, trial_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        marks = ",".join("?" * len(trial_ids))
        with _translated("exporting records"):
            cursor = self._db.execute(
                "SELECT chunk, trial_id, execution, producer, seq, count, kind, body FROM "
                f"chunks WHERE trial_id IN ({marks}) ORDER BY chunk", tuple(trial_ids))
            keys = ("chunk", "trial_id", "execution", "producer", "seq", "count", "kind", "body")
            for row in cursor:
                yield dict(zip(keys, row, strict=True))

    def chunk_number(self, trial_id: str, execution: int, producer: str, seq: int) -> int | None:
        with _translated("finding a chunk"):
            row = self._db.execute(
                "SELECT chunk FROM chunks WHERE trial_id = ? AND execution = ? AND producer = ? "
                "AND seq = ?", (trial_id, execution, producer, seq)).fetchone()
        return None if row is None else int(row[0])

    def import_trial(self, trial: dict[str, Any]) -> bool:
        """Insert an exported trial as it was; False when this database has it already."""
        with self._transaction("importing a trial") as db:
            if db.execute("SELECT 1 FROM trials WHERE id = ?", (trial["id"],)).fetchone():
                return False
            db.execute(
                "INSERT INTO trials (id, parent, status, command, identity, cwd, user, created, "
                "updated, executions, owner_host, owner_pid, owner_since, lease_until, root, "
                "branch_kind, branch_point, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "NULL, ?, ?, ?, ?)",
                (trial["id"], trial["parent"], trial["status"], json.dumps(trial["command"]),
                 json.dumps(trial["identity"], sort_keys=True), trial["cwd"], trial["user"],
                 trial["created"], trial["updated"], len(trial["executions"]), trial["host"],
                 trial["pid"], trial["since"], trial["root"], trial["branch_kind"],
                 trial["branch_point"], json.dumps(trial.get("tags") or [])))
            captures = trial.get("captures") or {}
            for e in trial["executions"]:
                capture = captures.get(e["number"])
                db.execute(
                    "INSERT INTO executions (trial_id, number, host, pid, started, ended, "
                    "exit_code, status, signals, capture) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (trial["id"], e["number"], e["host"], e["pid"], e["start"], e["end"],
                     e["exit_code"], e["status"], json.dumps(e["signals"]),
                     None if capture is None else json.dumps(capture)))
            for h in trial["history"]:
                self._history(db, trial["id"], h["execution"], h["status"], h["at"])
        return True

    def import_chunks(self, rows: Sequence[dict[str, Any]]) -> dict[int, int]:
        """Append exported chunks in their order; return {old chunk number: new}."""
        mapping = {}
        with self._transaction("importing records") as db:
            for row in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO chunks (trial_id, execution, producer, seq, count, "
                    "kind, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row["trial_id"], row["execution"], row["producer"], row["seq"],
                     row["count"], row["kind"], row["body"]))
                if cursor.rowcount:
                    mapping[row["chunk"]] = int(cursor.lastrowid or 0)
        return mapping

    def close(self) -> None:
        with _translated("closing the journal"):
            self._db.close()
        if self._claim is not None:
            self._claim.release()

