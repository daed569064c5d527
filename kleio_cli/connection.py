"""Reaching the daemon: find it, start it when absent (through systemd when its unit is
installed, else in the background), wait until it answers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kleio_cli.errors import EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from kleio_client import protocol
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable
from kleio_client.version import __version__
from kleio_runtime import launcher, lock
from kleio_runtime.config import Config

START_TIMEOUT = 15.0
LOG_FILE = launcher.LOG_FILE


def control_client(config: Config, timeout: float = 60.0) -> ControlClient:
    endpoints = protocol.Endpoints.in_directory(str(config.runtime_dir))
    return ControlClient(endpoints.control, timeout=timeout)


def connect(
    config: Config, start: bool = True, timeout: float = 60.0, same_database: bool = True
) -> ControlClient:
    """A client of a running daemon; start one first when ``start`` and none runs.

    With ``same_database``, a daemon serving another database than this
    command's configuration names is an error, never a silent switch.
    """
    if not _daemon_running(config):
        if not start:
            raise CliError(
                "kleiod is not running; start it with `kleio daemon start`", EXIT_UNAVAILABLE
            )
        start_daemon(config)
    client = control_client(config, timeout)
    info = wait_until_answering(client, config)
    if info.get("version") != __version__:
        client.close()
        raise CliError(
            f"kleiod {info.get('version')} (pid {info.get('pid')}) is running, but this is "
            f"kleio {__version__}; run `kleio daemon stop` (running trials are not touched) "
            "and try again",
            EXIT_UNAVAILABLE,
        )
    if same_database and info.get("database") != config.database_redacted:
        client.close()
        raise CliError(
            f"kleiod (pid {info.get('pid')}) serves {info.get('database')}, but this command "
            f"asks for {config.database_redacted}; run `kleio daemon stop` first to switch",
            EXIT_UNAVAILABLE,
        )
    return client


def _daemon_running(config: Config) -> bool:
    try:
        return lock.is_held(config.runtime_dir)
    except OSError as exc:  # the runtime directory's path cannot be one
        raise CliError(
            f"kleio: cannot use the runtime directory {config.runtime_dir}: "
            f"{(exc.strerror or str(exc)).lower()}; set KLEIO_RUNTIME_DIR to a directory of "
            "yours (or leave it unset)",
            EXIT_USAGE,
        ) from None


def start_daemon(config: Config) -> None:
    """Start kleiod (through systemd when its unit is installed); say so if systemd failed."""
    note = launcher.start(config, START_TIMEOUT)
    if note:
        print(f"kleio: {note}", file=sys.stderr)


def wait_until_answering(client: ControlClient, config: Config) -> dict[str, object]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return dict(client.call("ping", timeout=0.25))
        except DaemonUnavailable:
            if time.monotonic() > deadline:
                raise CliError(
                    f"kleio: kleiod did not answer within {START_TIMEOUT:.0f} s; see "
                    f"{Path(config.runtime_dir) / LOG_FILE}",
                    EXIT_UNAVAILABLE,
                ) from None
            if not lock.is_held(config.runtime_dir):
                _raise_start_failure(config, deadline)


def _raise_start_failure(config: Config, deadline: float) -> None:
    """A daemon that is neither locked nor answering may still be starting: give it time."""
    time.sleep(0.05)
    if lock.is_held(config.runtime_dir) or time.monotonic() < deadline - START_TIMEOUT + 3:
        return
    log_path = Path(config.runtime_dir) / LOG_FILE
    try:
        last = log_path.read_text(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        last = "no log"
    last = last.removeprefix("kleiod: ")
    raise CliError(f"kleio: kleiod failed to start: {last} (log: {log_path})", EXIT_UNAVAILABLE)
