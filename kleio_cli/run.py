"""``kleio run`` (and the ``kleio CMD ...`` prefix form): reserve the trial, supervise it."""

from __future__ import annotations

import difflib
import os
import re
import select
import shutil
import signal
import socket
import sys
import termios
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from kleio_cli import identity
from kleio_cli.capture import capture
from kleio_cli.capture.code import files_now
from kleio_cli.connection import connect
from kleio_cli.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND_COMMAND,
    EXIT_USAGE,
    CliError,
)
from kleio_cli.redaction import check_runnable, redacted
from kleio_client import protocol, resource
from kleio_client.control import ControlClient
from kleio_client.errors import KleioError, RequestRefused
from kleio_runtime.config import Config, resolve
from kleio_supervisor.supervisor import FORWARDED, Supervisor, SupervisorSpec


@dataclass(frozen=True)
class RunOptions:
    """What ``kleio run``, the prefix form and ``kleio exec`` accept besides the command."""

    allow_code_change: bool = False
    allow_env_change: bool = False
    detach: bool = False  # the daemon runs it; return once it is reserved
    escalate: bool = True  # a second Ctrl-C kills the trial (not under a debugger)
    tags: tuple[str, ...] = ()  # added to the trial once it is reserved
    capture_tensorboard: bool | None = None  # --[no-]capture-tensorboard; None: configured


def run_command(argv: list[str], options: RunOptions) -> int:
    if not argv:
        raise CliError("kleio run needs a command, e.g. `kleio run python train.py`", EXIT_USAGE)
    _check_text(argv)
    if argv[0].startswith("-"):
        _refuse_option(argv[0])
    if len(argv) == 1 and _ID.match(argv[0]) and not _program_exists(argv[0]):
        return exec_trial(argv[0], options)
    _check_program(argv[0])
    _check_script(argv)
    return run_spec(argv, os.getcwd(), options)


def exec_trial(trial: str, options: RunOptions) -> int:
    """Resume a trial (or one of its branches) by id, checking fingerprints as a run does."""
    with connect(resolve()) as client:
        detail = client.call("trial", id=trial)
    check_runnable(detail["command"], detail["id"])
    return run_spec(
        argv=detail["command"],
        cwd=working_directory(detail),
        options=options,
        exact={"id": detail["id"]},
    )


def run_spec(
    argv: list[str], cwd: str, options: RunOptions, exact: dict[str, Any] | None = None
) -> int:
    """Capture, reserve and supervise: the command's trial, or with ``exact`` that trial
    (``id``, and for a new branch its ``parent``, ``root``, ``branch_kind``, ``branch_point``)."""
    if options.detach:
        _check_detachable()
    config = resolve({"capture_tensorboard": options.capture_tensorboard})
    shown = redacted(argv)  # what is stored: no secret of the command line
    ident = identity.compute(shown, cwd, config.namespace)
    trial = (exact or {}).get("id", ident.id)
    with connect(config) as client:
        captured = capture_here(client, shown, cwd, trial, exact)
        try:
            reservation = client.call(
                "reserve",
                spec={
                    "id": ident.id,
                    "command": shown,
                    "identity": ident.canonical,
                    "cwd": cwd,
                    "user": ident.canonical["user"],
                    **(exact or {}),
                },
                capture=captured,
                allow={"code": options.allow_code_change, "environment": options.allow_env_change},
                fields=config.fingerprint,
                exact=exact is not None,
                host=socket.gethostname(),
                pid=os.getpid(),
                launch=launch_key(os.environ),
            )
        except RequestRefused as exc:
            if exc.code == protocol.E_COMPLETED:
                print(f"kleio: {exc}", file=sys.stderr)
                return 0
            raise
        if options.tags:
            client.call("tag", id=reservation["id"], add=list(options.tags))
    _announce(reservation)
    spec = SupervisorSpec(
        trial_id=reservation["id"],
        execution=reservation["execution"],
        argv=argv,
        cwd=cwd,
        runtime_dir=str(config.runtime_dir),
        lease_seconds=reservation["lease_seconds"],
        escalate=options.escalate,
        flush_timeout=config.flush_timeout,
        buffer_bytes=config.buffer_bytes,
        capture_tensorboard=config.capture_tensorboard,
        project_root=captured["code"].get("root") if captured["code"].get("git") else None,
    )
    try:
        if options.detach:
            return detach(config, spec)
        return supervise(spec)
    except (OSError, KleioError) as exc:  # no supervisor: give the reservation back at once
        with connect(config) as client:
            client.call(
                "end_execution",
                id=spec.trial_id,
                execution=spec.execution,
                exit_code=EX_SOFTWARE,
                signals=[],
            )
        raise CliError(f"kleio: could not start the supervisor: {exc}") from None


def detach(config: Config, spec: SupervisorSpec) -> int:
    """Have the daemon start the supervisor, with this environment; print the trial's id."""
    with connect(config) as client:
        client.call("spawn", spec=asdict(spec), env=dict(os.environ))
    print(spec.trial_id)
    print(
        f"kleio: trial {spec.trial_id[:12]} runs detached; follow it with "
        f"`kleio tail -f {spec.trial_id[:8]}`",
        file=sys.stderr,
    )
    return 0


def launch_key(env: Any) -> str | None:
    """The launch this command is one process of, whose processes make one execution:
    $KLEIO_LAUNCH, else the tasks of one srun step (``srun -N2 kleio torchrun ...``: the
    first node reserves the trial, the others join its execution)."""
    if env.get("KLEIO_LAUNCH"):
        return str(env["KLEIO_LAUNCH"])
    job, step, tasks = (
        env.get(name, "") for name in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS")
    )
    if job and step and tasks.isdigit() and int(tasks) > 1:
        return f"slurm:{job}.{step}"
    return None


def _check_detachable() -> None:
    """A detached trial is the daemon's child, outside the caller's batch job: refused in a
    SLURM job, where it would run beyond the job's allocation and its end."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        raise CliError(
            f"kleio: --detach inside SLURM job {job} would run the trial outside the job (its "
            "allocation, its limits, its end); run it in the foreground, which outlives the "
            "terminal too, or submit it as a job of its own with sbatch",
            EXIT_USAGE,
        )


def _resource_hashes(paths: list[str]) -> dict[str, str | None]:
    """The content of the inputs the trial logged before, as they are now (cached hashes)."""
    cache = resource.HashCache()
    return {path: resource.describe(path, cache)["sha256"] for path in paths}


def _check_text(argv: list[str]) -> None:
    """The journal stores text: an argument or directory that is not UTF-8 is refused."""
    for value in (*argv, os.getcwd()):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            raise CliError(
                f"kleio: {shown!r} is not valid UTF-8; kleio records only text "
                "arguments and directories",
                EXIT_USAGE,
            ) from None


def capture_here(
    client: ControlClient,
    argv: list[str],
    cwd: str,
    trial: str,
    exact: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What running ``argv`` here would run, as the daemon compares it with the trial's
    executions: the capture, with the trial's resources and the files it ran hashed now."""
    captured = capture(argv, cwd)
    parent = (exact or {}).get("parent")  # a new `kleio branch` child: its parent's
    paths = client.call("resources", id=trial, exact=exact is not None, parent=parent)
    captured["resources"] = _resource_hashes(paths)
    ran = client.call("imported", id=trial, exact=exact is not None, parent=parent)
    captured["imported"] = files_now(captured["code"], ran)
    return captured


def working_directory(trial: dict[str, Any]) -> str:
    """Where the trial ran, or the same place in this checkout of its project."""
    if os.path.isdir(trial["cwd"]):
        return str(trial["cwd"])
    top = identity.git_toplevel(Path.cwd())
    relative = (trial.get("identity") or {}).get("cwd") or "."
    if top is not None and (top / relative).is_dir():
        return str(top / relative)
    raise CliError(
        f"kleio: trial {trial['id'][:12]} ran in {trial['cwd']}, which is not here; "
        "run this from a checkout of its project",
        EXIT_USAGE,
    )


def _program_exists(program: str) -> bool:
    if os.sep in program:
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program) is not None


EX_SOFTWARE = 70
_ID = re.compile(r"^[0-9a-f]{4,64}$")


def _check_program(program: str) -> None:
    """Refuse a command that cannot start before it becomes a trial (a typo is no trial)."""
    if _program_exists(program):
        return
    if os.sep in program and os.path.isfile(program):
        raise CliError(
            f"kleio: permission denied: {program} is not executable; run it with "
            f"its interpreter, e.g. `kleio python {program}`",
            EXIT_NOT_EXECUTABLE,
        )
    hint = ""
    from kleio_cli.app import command_names

    close = difflib.get_close_matches(program, sorted(command_names()), n=1)
    if close:
        hint = f"; did you mean `kleio {close[0]}`?"
    raise CliError(f"kleio: command not found: {program}{hint}", EXIT_NOT_FOUND_COMMAND)


def _refuse_option(option: str) -> NoReturn:
    """An option of ``run`` that does not exist, not a program named like it."""
    from kleio_cli.options import RUN_OPTIONS

    close = difflib.get_close_matches(option.split("=")[0], sorted(RUN_OPTIONS), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; see `kleio run --help`"
    raise CliError(f"kleio: no such option: {option}{hint}", EXIT_USAGE)


_PYTHON = re.compile(r"^(python|pypy)[0-9.]*$")
_VALUED = frozenset({"-W", "-X", "-Q"})  # interpreter options whose value follows


def _check_script(argv: list[str]) -> None:
    """Refuse ``kleio python nosuch.py`` before it becomes a trial, as a missing command
    is (the interpreter would only say it cannot open the file)."""
    if not _PYTHON.match(os.path.basename(argv[0])):
        return
    args = iter(argv[1:])
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg.startswith(("-m", "-c")) or arg == "-":
            return  # a module, a command or stdin: nothing to look for
        elif not arg.startswith("-"):
            if not os.path.exists(arg):
                raise CliError(
                    f"kleio: no such script: {arg} (in {os.getcwd()}); no trial was made",
                    EXIT_USAGE,
                )
            return


def _announce(reservation: dict[str, Any]) -> None:
    if reservation.get("branched_from"):
        print(
            f"kleio: branching trial {reservation['branched_from'][:12]}, which ran other "
            "code or environment:",
            file=sys.stderr,
        )
        for change in reservation["changes"]:
            print(f"  {change}", file=sys.stderr)
    print(f"trial reserved with id: {reservation['id']}", file=sys.stderr)
    if reservation.get("joined"):
        print(
            f"kleio: joining execution {reservation['execution']} of the trial, one process "
            "of its launch",
            file=sys.stderr,
        )
    elif reservation["execution"] > 1:
        print(
            f"kleio: resuming the {reservation['previous_status']} trial as execution "
            f"{reservation['execution']}",
            file=sys.stderr,
        )


def supervise(spec: SupervisorSpec) -> int:
    """Fork the supervisor: in the caller's session, in a process group of its own.

    Forking reuses this interpreter and its imports (a new one costs 0.1 s).
    The terminal's signals reach only this process; it forwards each once to
    the supervisor, which forwards it to the trial.  Ctrl-Z stops the trial,
    then this process, as a shell's job would stop.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    with terminal_settings_kept():
        return _fork_supervisor(spec)


@contextmanager
def terminal_settings_kept() -> Iterator[None]:
    """The caller's terminal as it was, whatever the trial did to it (a debugger's line
    editing, a killed full-screen program)."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    try:
        yield
    finally:
        if fd is not None and saved is not None:
            with suppress(termios.error, OSError):
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _fork_supervisor(spec: SupervisorSpec) -> int:
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

    for signum in FORWARDED:  # what the supervisor forwards to the trial
        signal.signal(signum, suspend if signum == signal.SIGTSTP else forward)
    code = os.waitstatus_to_exitcode(_wait_for(pid))
    return code if code >= 0 else 128 - code


WAIT_SLICE = 0.25


def _wait_for(pid: int) -> int:
    """The child's wait status, waited for in slices: Python runs a signal's handler only
    between two bytecodes, so a Ctrl-C that came just before a blocking ``waitpid`` would
    be forwarded only once the trial had ended.  Its pidfd wakes the wait at the exit."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (Linux before 5.3): wait as before
        return os.waitpid(pid, 0)[1]
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            select.select([pidfd], [], [], WAIT_SLICE)
    finally:
        os.close(pidfd)


def _become_supervisor(spec: SupervisorSpec) -> NoReturn:
    code = EX_SOFTWARE  # should the supervisor itself fail
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
