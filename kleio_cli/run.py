"""``kleio run`` (and the ``kleio CMD ...`` prefix form): reserve the trial, supervise it."""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

from kleio_cli import identity
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_NOT_FOUND_COMMAND, EXIT_USAGE, CliError
from kleio_client import protocol
from kleio_client.errors import RequestRefused
from kleiod.config import resolve
from kleiod.supervisor import Supervisor, SupervisorSpec


def run_command(argv: list[str]) -> int:
    if not argv:
        raise CliError("kleio run needs a command, e.g. `kleio run python train.py`", EXIT_USAGE)
    _check_program(argv[0])
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


def _check_program(program: str) -> None:
    """Refuse a command that cannot start before it becomes a trial (a typo is no trial)."""
    found = shutil.which(program) if os.sep not in program else (
        program if os.access(program, os.X_OK) and os.path.isfile(program) else None)
    if found:
        return
    hint = ""
    from kleio_cli.app import command_names

    close = difflib.get_close_matches(program, sorted(command_names()), n=1)
    if close:
        hint = f"; did you mean `kleio {close[0]}`?"
    raise CliError(f"kleio: command not found: {program}{hint}", EXIT_NOT_FOUND_COMMAND)


def _announce(reservation: dict[str, Any]) -> None:
    print(f"trial reserved with id: {reservation['id']}", file=sys.stderr)
    if reservation["execution"] > 1:
        print(f"kleio: resuming the {reservation['previous_status']} trial as execution "
              f"{reservation['execution']}", file=sys.stderr)


def supervise(spec: SupervisorSpec) -> int:
    """Fork the supervisor: in the caller's session, in a process group of its own.

    Forking reuses this interpreter and its imports (a new one costs 0.1 s).
    The terminal's signals reach only this process; it forwards each once to
    the supervisor, which forwards it to the trial.  Ctrl-Z stops the trial,
    then this process, as a shell's job would stop.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _become_supervisor(spec)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first, or has already exited

    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def suspend(signum: int, frame: Any) -> None:
        forward(signum, frame)
        # SIGSTOP, not SIGTSTP: the kernel discards SIGTSTP in an orphaned process group.
        os.kill(os.getpid(), signal.SIGSTOP)  # stops here until SIGCONT

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGCONT):
        signal.signal(signum, forward)
    signal.signal(signal.SIGTSTP, suspend)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _become_supervisor(spec: SupervisorSpec) -> NoReturn:
    code = 70  # EX_SOFTWARE, should the supervisor itself fail
    try:
        os.setpgid(0, 0)
        code = Supervisor(spec).run()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
