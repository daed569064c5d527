"""The tables of the SQLite journal and how an older file is brought up to date.

Owns the schema (trials, executions, status history, chunks of records), its
version, the columns added to tables after they first shipped, and the
setting up of a freshly opened connection: WAL mode, then the migrations,
then the tables, retried while another daemon opens the same new file.
"""

from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 3
OPEN_RETRY_SECONDS = 10.0
# Columns added after a table first shipped: added in place to older journals.
ADDED_COLUMNS = (
    ("trials", "root", "TEXT"),
    ("trials", "branch_kind", "TEXT"),
    ("trials", "branch_point", "INTEGER"),
    ("executions", "capture", "TEXT"),
    ("trials", "tags", "TEXT"),
    ("trials", "owner_launch", "TEXT"),
    ("executions", "launch", "TEXT"),
    ("executions", "participants", "INTEGER NOT NULL DEFAULT 1"),
    ("executions", "ends", "TEXT"),
    ("executions", "configuration", "TEXT"),
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
    tags TEXT,
    owner_launch TEXT
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
    -- JSON: the capture's configuration, what listing trials reads; placed before the
    -- capture so that reading it does not walk the capture's overflow pages
    configuration TEXT,
    capture TEXT,
    launch TEXT,
    participants INTEGER NOT NULL DEFAULT 1,  -- its processes still running (a launch's)
    ends TEXT,  -- JSON: the exit code, signals and status of each that ended
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


# Reads through a memory map of the file's first GiB: a statistics chunk's body spans
# dozens of overflow pages, copied one by one through SQLite's cache otherwise (a
# million records read 5x faster; writes still go through the WAL).
MMAP_BYTES = 1 << 30


def set_up(db: sqlite3.Connection) -> None:
    """WAL mode and the schema.  Switching to WAL does not wait on the busy handler,
    so two daemons opening a new file at once retry for a while."""
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            _add_missing_columns(db)
            db.executescript(SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        existing = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if existing and column not in existing:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
