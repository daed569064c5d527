"""One daemon per user and machine: an exclusive lock on a file in the runtime directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from kleio_runtime.errors import DaemonAlreadyRunning

LOCK_FILE = "kleiod.lock"


class PidLock:
    def __init__(self, runtime_dir: Path) -> None:
        self.path = runtime_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonAlreadyRunning(
                f"kleiod is already running (pid {holder_pid(self.path.parent)}) "
                f"for {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_held(runtime_dir: Path) -> bool:
    """Whether a daemon holds the lock of ``runtime_dir`` now (never blocks)."""
    try:
        fd = os.open(runtime_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def holder_pid(runtime_dir: Path) -> int | None:
    try:
        return int((runtime_dir / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
