"""One machine at a time on a SQLite journal that lives on a network filesystem.

SQLite's WAL keeps its index in shared memory, which two machines cannot share:
two daemons on two nodes writing one file over NFS corrupt it.  The default
refuses such a path (see ``sqlite_connection``); a user who allows it
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
        self._refreshed_at = 0.0  # monotonic time of the last heartbeat written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Claim the journal, or raise ConfigError naming the host that holds it: created
        with O_EXCL when there is no claim, replaced (one rename) when it is stale or this
        host's, and read back after a moment, in case another host replaced it too."""
        if self._refuse_if_held() is None:
            try:
                self._create()
            except FileExistsError:  # another daemon's, created since: judge it
                self._refuse_if_held()
                self._write()
        else:
            self._write()
        time.sleep(SETTLE_SECONDS)
        self._refuse_if_held()
        self._thread = threading.Thread(target=self._refresh, name="kleio-host-claim", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Before each write: StorageError once another host has taken the journal, or
        once this daemon has failed to refresh its claim for long enough that another
        host may judge it stale."""
        if self._lost is not None:
            raise StorageError(
                f"{self.path.with_suffix('')} was taken over by "
                f"{self._lost.describe(time.time())}; this daemon no longer writes it "
                "(records are kept): stop one of the two daemons, or use MongoDB"
            )
        if time.monotonic() - self._refreshed_at > STALE_SECONDS - 2 * REFRESH_SECONDS:
            raise StorageError(
                f"cannot refresh {self.path}; not writing the journal until "
                "it can (records are kept)"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            holder = self._read()
        except (OSError, ValueError):
            return
        if holder is not None and (holder.host, holder.pid) == (self.host, self.pid):
            self.path.unlink(missing_ok=True)

    def _refuse_if_held(self) -> Holder | None:
        """The present claim, unless it is another host's and fresh: then ConfigError."""
        try:
            holder = self._read()
        except (OSError, ValueError):  # half written, or not ours: fresh as its mtime
            holder = Holder("an unknown host", 0, _mtime(self.path))
        now = time.time()
        if holder is None or holder.host == self.host or now - holder.heartbeat > STALE_SECONDS:
            return holder
        raise ConfigError(
            f"{self.path.with_suffix('')} is in use by {holder.describe(now)}; two machines "
            "must not write one SQLite file over a network filesystem: stop that daemon, give "
            "this one a local sqlite:/// path, or share a mongodb:// database"
        )

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self.renew()

    def renew(self) -> None:
        """Refresh the heartbeat, unless another host has taken the journal meanwhile; a
        claim that cannot be read now (a server hiccup) is tried again next time."""
        try:
            holder = self._read()
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return
        if holder is not None and holder.host != self.host:
            if self._lost is None:
                log.error("%s taken over by %s", self.path, holder.describe(time.time()))
            self._lost = holder
            return
        self._write()

    def _read(self) -> Holder | None:
        """The claim; None when there is none; OSError or ValueError when it cannot be read."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        try:
            return Holder(str(data["host"]), int(data["pid"]), float(data["heartbeat"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a claim: {exc}") from None

    def _record(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "heartbeat": time.time()}).encode()

    def _create(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, self._record())
        finally:
            os.close(fd)
        self._refreshed_at = time.monotonic()

    def _write(self) -> None:
        temporary = self.path.with_name(f"{self.path.name}.{self.host}.{self.pid}")
        try:
            temporary.write_bytes(self._record())
            os.replace(temporary, self.path)
            self._refreshed_at = time.monotonic()
        except OSError as exc:
            log.warning("cannot refresh %s: %s", self.path, exc)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
