"""One machine at a time on a SQLite journal that lives on a network filesystem.

SQLite's WAL keeps its index in shared memory, which two machines cannot share:
two daemons on two nodes writing one file over NFS corrupt it.  The default
refuses such a path (see ``sqlite.SQLiteStorage``); a user who allows it
anyway gets this guard.  The daemon that opens the journal writes
``<journal>.host`` (host, pid, heartbeat) and refreshes it every
``REFRESH_SECONDS``; a daemon on another host refuses the journal while that
heartbeat is fresh, and takes it over once it is older than ``STALE_SECONDS``
(the node died).  A daemon that finds the claim taken from it stops writing:
its records stay held and spilled, as for any database error.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kleiod.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0
STALE_SECONDS = 60.0
SETTLE_SECONDS = 0.2  # two hosts claiming at once: the claim read back after this wins


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    heartbeat: float

    def describe(self, now: float) -> str:
        age = max(0.0, now - self.heartbeat)
        return f"kleiod on {self.host} (pid {self.pid}, seen {age:.0f} s ago)"


class HostClaim:
    """This host's claim on one journal file, kept fresh by a thread until released."""

    def __init__(self, journal: Path, host: str | None = None) -> None:
        self.path = journal.with_name(journal.name + ".host")
        self.host = host or socket.gethostname()
        self.pid = os.getpid()
        self._lost: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Claim the journal, or raise ConfigError naming the host that holds it."""
        self._refuse_if_held()
        self._write()
        time.sleep(SETTLE_SECONDS)
        self._refuse_if_held()
        self._thread = threading.Thread(target=self._refresh, name="kleio-host-claim",
                                        daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Before each write: StorageError once another host has taken the journal."""
        if self._lost is not None:
            raise StorageError(
                f"{self.path.with_suffix('')} was taken over by "
                f"{self._lost.describe(time.time())}; this daemon no longer writes it "
                "(records are kept): stop one of the two daemons, or use MongoDB")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self._read()
        if holder is not None and (holder.host, holder.pid) == (self.host, self.pid):
            self.path.unlink(missing_ok=True)

    def _refuse_if_held(self) -> None:
        holder = self._read()
        now = time.time()
        if holder is None or holder.host == self.host or now - holder.heartbeat > STALE_SECONDS:
            return
        raise ConfigError(
            f"{self.path.with_suffix('')} is in use by {holder.describe(now)}; two machines "
            "must not write one SQLite file over a network filesystem: stop that daemon, give "
            "this one a local sqlite:/// path, or share a mongodb:// database")

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self.renew()

    def renew(self) -> None:
        """Refresh the heartbeat, unless another host has taken the journal meanwhile."""
        holder = self._read()
        if holder is not None and holder.host != self.host:
            if self._lost is None:
                log.error("%s taken over by %s", self.path, holder.describe(time.time()))
            self._lost = holder
            return
        self._write()

    def _read(self) -> Holder | None:
        try:
            data = json.loads(self.path.read_text())
            return Holder(str(data["host"]), int(data["pid"]), float(data["heartbeat"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # half written, or not ours
            try:
                return Holder("an unknown host", 0, self.path.stat().st_mtime)
            except OSError:
                return None

    def _write(self) -> None:
        record = {"host": self.host, "pid": self.pid, "heartbeat": time.time()}
        temporary = self.path.with_name(f"{self.path.name}.{self.host}.{self.pid}")
        try:
            temporary.write_text(json.dumps(record))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("cannot refresh %s: %s", self.path, exc)
