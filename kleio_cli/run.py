"""``kleio run`` (and the ``kleio CMD ...`` prefix form): reserve the trial, supervise it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Any

from kleio_cli import identity
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client import protocol
from kleio_client.errors import RequestRefused
from kleiod.config import resolve
from kleiod.supervisor import SupervisorSpec


def run_command(argv: list[str]) -> int:
    if not argv:
        raise CliError("kleio run needs a command, e.g. `kleio run python train.py`", EXIT_USAGE)
    config = resolve()
    cwd = os.getcwd()
    ident = identity.compute(argv, cwd)
    with connect(config) as client:
        try:
            reservation = client.call(
                "reserve",
                spec={"id": ident.id, "command": argv, "identity": ident.canonical, "cwd": cwd,
                      "user": ident.canonical["user"]},
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        except RequestRefused as exc:
            if exc.code == protocol.E_COMPLETED:
                print(f"kleio: {exc}", file=sys.stderr)
                return 0
            raise
    _announce(reservation)
    spec = SupervisorSpec(
        trial_id=reservation["id"], execution=reservation["execution"], argv=argv, cwd=cwd,
        runtime_dir=str(config.runtime_dir), lease_seconds=reservation["lease_seconds"],
    )
    return supervise(spec)


def _announce(reservation: dict[str, Any]) -> None:
    print(f"trial reserved with id: {reservation['id']}", file=sys.stderr)
    if reservation["execution"] > 1:
        print(f"kleio: resuming the {reservation['previous_status']} trial as execution "
              f"{reservation['execution']}", file=sys.stderr)


def supervise(spec: SupervisorSpec) -> int:
    """Run the supervisor in a session of its own; Ctrl-C reaches the trial through it."""
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "kleiod.supervisor", spec.to_json()],
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in protocol.TRIAL_ENVIRONMENT},
    )

    def forward(signum: int, _frame: Any) -> None:
        try:
            supervisor.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return supervisor.wait()
