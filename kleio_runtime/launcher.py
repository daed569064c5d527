"""Starting kleiod when none runs: through systemd when its unit is installed, else as a
process of its own (a new session, logging beside its sockets).

Used by the CLI before a request, and by a trial's supervisor that finds no
daemon for a while (one crashed and nothing restarted it), so that a trial
never waits on someone to type a `kleio` command.  Two starting at once is
harmless: the daemon's lock lets one serve.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import platformdirs

from kleio_client import protocol
from kleio_runtime import lock
from kleio_runtime.config import Config, ensure_private_dir

LOG_FILE = "kleiod.log"
STOPPED_MARKER = "stopped"  # `kleio daemon stop` was asked: supervisors start none
UNIT = "kleiod.service"
# What systemd sets in a service's environment; kleiod reads INVOCATION_ID as "I am the unit".
SERVICE_VARIABLES = frozenset({"NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM"})
START_COMMAND = ["systemctl", "--user", "start", "kleiod"]


def start(config: Config, timeout: float) -> str | None:
    """Start a daemon for ``config``; return a one-line note when systemd was meant to
    start it and did not (the daemon is then started directly)."""
    note = None
    if unit_installed():
        note = start_unit(timeout)
        if note is None and lock.is_held(config.runtime_dir):
            return None
        note = note or f"{UNIT} does not serve {config.runtime_dir}"
    spawn(config)
    return None if note is None else f"{note}; starting kleiod directly"


def unit_path() -> Path:
    """Where the user's systemd manager looks for kleiod's unit:
    ``$XDG_CONFIG_HOME/systemd/user`` (platformdirs' user config directory)."""
    return platformdirs.user_config_path("systemd") / "user" / UNIT


def unit_installed() -> bool:
    """Whether the unit is in the user's systemd directory and systemctl is there to start it."""
    return unit_path().is_file() and shutil.which(START_COMMAND[0]) is not None


def start_unit(timeout: float) -> str | None:
    """Start the installed unit and wait until it serves (Type=notify); None once
    started, else why not, in one line."""
    shown = " ".join(START_COMMAND)
    try:
        done = subprocess.run(
            START_COMMAND,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"`{shown}` did not return within {timeout:.0f} s"
    except OSError as exc:
        return f"`{shown}` failed: {exc}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        return f"`{shown}` failed: {why}"
    return None


def spawn(config: Config) -> subprocess.Popen[bytes]:
    """Start kleiod in the background, in a session of its own, logging beside its sockets."""
    runtime = ensure_private_dir(config.runtime_dir)
    with open(runtime / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kleiod", "--runtime-dir", str(runtime)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=_environment(config),
        )


def _environment(config: Config) -> dict[str, str]:
    """The caller's environment, with the database resolved (never on argv, where other
    users could read credentials), and without what systemd gives a service (the caller
    may run inside one, a terminal or a CI runner): this daemon is not that service."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in protocol.TRIAL_ENVIRONMENT and k not in SERVICE_VARIABLES
    }
    env["KLEIO_DATABASE"] = config.database
    return env


def mark_stopped(runtime_dir: Path) -> None:
    """The user stopped the daemon on purpose: supervisors leave it stopped."""
    (Path(runtime_dir) / STOPPED_MARKER).touch()


def clear_stopped(runtime_dir: Path) -> None:
    (Path(runtime_dir) / STOPPED_MARKER).unlink(missing_ok=True)


def stopped_by_user(runtime_dir: Path) -> bool:
    return (Path(runtime_dir) / STOPPED_MARKER).exists()
