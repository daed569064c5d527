"""kleiod as a systemd user service: ``kleio daemon install-service``.  Starting the
installed unit (so that the CLI never starts a second daemon) is kleio_runtime.launcher's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kleio_cli.errors import CliError
from kleio_runtime import lock
from kleio_runtime.config import resolve
from kleio_runtime.launcher import unit_path

ENABLE_COMMAND = "systemctl --user daemon-reload && systemctl --user enable --now kleiod"

# The same unit as systemd/kleiod.service in the source tree, which a test compares.
UNIT_TEMPLATE = """\
# Kleio's per-user daemon, as a systemd user service, written by
# `kleio daemon install-service`.
[Unit]
Description=Kleio daemon (kleiod): the per-user journal of experiment trials
# systemd.kill(5) explains KillMode=process.
Documentation=man:systemd.kill(5)

[Service]
# kleiod tells systemd when its sockets are bound and it serves (sd_notify),
# so `systemctl --user start kleiod` returns once kleio can reach it.
Type=notify
NotifyAccess=main
ExecStart={exec_start}
Restart=on-failure
RestartSec=2
# Stopping or restarting the service signals the daemon only, never a trial
# or its supervisor.
KillMode=process

[Install]
WantedBy=default.target
"""


def exec_start() -> list[str]:
    """The command of this installation's daemon: the kleiod beside this interpreter
    (its virtual environment's, never a symlink's target), else ``python -m kleiod``."""
    python = os.path.abspath(sys.executable)
    beside = os.path.join(os.path.dirname(python), "kleiod")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    return [python, "-m", "kleiod"]


def unit_text(command: list[str]) -> str:
    return UNIT_TEMPLATE.format(exec_start=" ".join(_quoted(arg) for arg in command))


def install(force: bool) -> None:
    """Write the unit (or leave an identical one) and say how to enable it."""
    target = unit_path()
    command = exec_start()
    text = unit_text(command)
    existing = _read(target)
    if existing == text:
        print(f"{target} is already installed")
    elif existing is not None and not force:
        raise CliError(
            f"{target} exists and differs from this installation's unit; "
            "rerun with --force to replace it"
        )
    else:
        _write(target, text)
        print(
            f"{'replaced' if existing is not None else 'wrote'} {target} "
            f"(ExecStart={' '.join(command)})"
        )
    print("to run kleiod under systemd, now and at every login:")
    if lock.is_held(resolve().runtime_dir):
        print(
            "  kleio daemon stop   # first: the kleiod running now holds the lock "
            "(trials are not touched)"
        )
    print(f"  {ENABLE_COMMAND}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once: systemd never reads half a unit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def _quoted(arg: str) -> str:
    """One argument of a unit's command line (systemd.service(5), systemd.unit(5))."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\" for c in arg):
        escaped = '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped
