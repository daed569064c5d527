"""The supervisor: one small process per trial execution, the trial's parent.

It runs in the caller's session (in a process group of its own, so that the
terminal's signals reach it only through the CLI, once each) and starts the
trial in a session of its own.  It streams the trial's output live to its own
stdout/stderr (the caller's terminal) and to the daemon as numbered output
records, forwards SIGINT, SIGTERM, SIGQUIT, SIGTSTP, SIGCONT, SIGWINCH, SIGUSR1
and SIGUSR2 (a second SIGINT within ``KILL_WINDOW`` seconds kills the trial),
renews the trial's lease, and reports the exit code and the signals seen.  The daemon decides
the status.  When the trial has exited, children it left behind holding its
output get ``ORPHAN_GRACE`` seconds more of output capture, not more.

Run as ``python -m kleio_supervisor SPEC_JSON``.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kleio_client import protocol
from kleio_client.channel import Channel
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable, KleioError, RequestRefused
from kleio_client.protocol import SupervisorSpec
from kleio_client.startup import python_path
from kleio_runtime import launcher, lock
from kleio_runtime.config import resolve
from kleio_runtime.errors import RuntimeSetupError
from kleio_supervisor import terminal

KILL_WINDOW = 3.0
HEARTBEAT_WAIT = 5.0
DAEMON_GRACE = 3.0
DAEMON_START_WAIT = 15.0  # for a daemon the supervisor starts, on a busy machine
WATCH_INTERVAL = 1.0  # how long no daemon may hold the lock before the supervisor starts one
ORPHAN_GRACE = 1.0
REPORT_RETRY = 1.0
ECHO_WINDOW = 0.05
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGCONT,
    signal.SIGWINCH,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
RECORDED = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGQUIT})
# Taken once the trial has ended: the supervisor stops waiting for an absent daemon.
GIVE_UP = frozenset({signal.SIGINT, signal.SIGQUIT})
# SLURM's warning before preemption or the time limit (`--signal=USR1@90`): inside a
# SLURM job it is recorded too, and the trial ends interrupted, to resume when requeued.
PREEMPTION_WARNINGS = frozenset({signal.SIGUSR1, signal.SIGUSR2})
READ_BYTES = 65536
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


class Supervisor:
    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.endpoints = protocol.Endpoints.in_directory(spec.runtime_dir)
        self.signals: list[str] = []
        self._recorded = RECORDED | (
            PREEMPTION_WARNINGS if "SLURM_JOB_ID" in os.environ else frozenset()
        )
        self._last_interrupt = 0.0
        self._last_signal: dict[int, float] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._given_up = False
        self._front = os.getppid()
        self._daemon_absent_since: float | None = None
        self._told_trouble: str | None = None
        self._next_launch = 0.0
        self._outputs: list[terminal.Output] = []

    # -- running ------------------------------------------------------------------

    def run(self) -> int:
        self._install_signal_handlers()
        control = ControlClient(self.endpoints.control)
        channel = self._channel = Channel(
            self.endpoints.ingest,
            self.spec.trial_id,
            self.spec.execution,
            self.spec.client_settings,
        )
        done = threading.Event()
        watchdog = threading.Thread(target=self._watch_daemon, args=(done,), daemon=True)
        watchdog.start()
        try:
            try:
                exit_code = self._start_and_pump(control, channel)
            finally:
                channel.close()
            self._report_end(control, exit_code)
        finally:
            done.set()
        return exit_code if exit_code >= 0 else 128 - exit_code

    def _watch_daemon(self, done: threading.Event) -> None:
        """Every second until the end is recorded: is a daemon there to take the records?"""
        while not done.wait(WATCH_INTERVAL):
            self._revive_daemon()

    def _start_and_pump(self, control: ControlClient, channel: Channel) -> int:
        outputs = self._outputs = terminal.open_outputs(foreground=not self.spec.detached)
        try:
            self._process = subprocess.Popen(
                self.spec.argv,
                cwd=self.spec.cwd,
                env=self._trial_environment(),
                stdout=outputs[0].theirs,
                stderr=outputs[1].theirs,
                start_new_session=True,
            )
        except OSError as exc:
            return self._cannot_start(channel, *self._why_not_started(exc))
        finally:
            for output in outputs:
                os.close(output.theirs)
        self._call_quietly(control, "start_execution", pid=self._process.pid)
        heartbeat = threading.Thread(target=self._heartbeat, daemon=True)
        heartbeat.start()
        self._pump(channel, outputs)
        return self._process.wait()

    def _why_not_started(self, exc: OSError) -> tuple[str, int]:
        program = self.spec.argv[0]
        if not os.path.isdir(self.spec.cwd):
            return f"the working directory {self.spec.cwd} does not exist", EXIT_NOT_FOUND
        if isinstance(exc, FileNotFoundError):
            return f"command not found: {program}", EXIT_NOT_FOUND
        if isinstance(exc, PermissionError):
            return f"permission denied: {program}", EXIT_NOT_EXECUTABLE
        return f"cannot run {program}: {exc.strerror or exc}", EXIT_NOT_EXECUTABLE

    def _cannot_start(self, channel: Channel, message: str, code: int) -> int:
        text = f"kleio: {message}\n".encode()
        _write(2, text)
        channel.record(protocol.OUTPUT, {"stream": "stderr", "data": text})
        return code

    def _trial_environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in protocol.TRIAL_ENVIRONMENT}
        env.update(self.spec.trial_environment())
        env[protocol.ENV_INGEST] = self.endpoints.ingest
        # Output reaches the terminal and the journal as it is written, not per 8 KiB.
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The start-up hook that journals TensorBoard scalars, before the caller's entries.
        path = python_path(env.get("PYTHONPATH"), self.spec.capture_tensorboard)
        if path is None:
            env.pop("PYTHONPATH", None)
        else:
            env["PYTHONPATH"] = path
        return env

    def _pump(self, channel: Channel, outputs: list[terminal.Output]) -> None:
        selector = selectors.DefaultSelector()
        for output in outputs:
            selector.register(output.ours, selectors.EVENT_READ, output)
        open_outputs = len(outputs)
        deadline: float | None = None
        while open_outputs:
            if deadline is None and self._trial_exited():
                deadline = time.monotonic() + ORPHAN_GRACE
            if deadline is not None and time.monotonic() >= deadline:
                break
            for key, _ in selector.select(0.1):
                output = key.data
                data = terminal.read(output.ours, READ_BYTES)
                if not data:
                    selector.unregister(output.ours)
                    open_outputs -= 1
                    continue
                if self._echoing():
                    _write(output.caller, data)
                channel.record(protocol.OUTPUT, {"stream": output.name, "data": data})
        selector.close()
        for output in outputs:
            os.close(output.ours)

    def _echoing(self) -> bool:
        """Echo while the `kleio` in front (the parent) lives: once it is gone (killed, its
        terminal hung up) the trial runs on, followed with `kleio tail -f` if at all."""
        return not self.spec.detached and os.getppid() == self._front

    def _trial_exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def _heartbeat(self) -> None:
        interval = max(0.5, self.spec.lease_seconds / 4)
        # A daemon retrying a locked database may take seconds to answer: wait for it.
        control = ControlClient(self.endpoints.control, timeout=max(interval, HEARTBEAT_WAIT))
        process = self._process
        warned = False
        while process is not None and process.poll() is None:
            time.sleep(interval)
            try:
                reply = control.call(
                    "heartbeat", id=self.spec.trial_id, execution=self.spec.execution
                )
            except KleioError:
                continue  # a lost heartbeat is recovered by the next one
            owner = reply["owner"]
            self._database_trouble(reply.get("database_error"))
            if not owner and not warned:
                warned = True
                _write(
                    2,
                    (
                        f"kleio: trial {self.spec.trial_id[:12]} was taken over by another "
                        "execution after this one's lease expired; what this one logs from now "
                        "on is refused\n"
                    ).encode(),
                )
        control.close()

    def _report_end(self, control: ControlClient, exit_code: int) -> None:
        """Within KLEIO_FLUSH_TIMEOUT, or until a Ctrl-C gives up (the trial is then lost)."""
        deadline = time.monotonic() + self.spec.flush_timeout
        while not self._given_up and time.monotonic() < deadline:
            try:
                control.call(
                    "end_execution",
                    id=self.spec.trial_id,
                    execution=self.spec.execution,
                    exit_code=exit_code,
                    signals=self.signals,
                    timeout=REPORT_RETRY,
                )
                return
            except RequestRefused as exc:
                if exc.code == protocol.E_STORAGE:  # the journal is away for now: again
                    time.sleep(REPORT_RETRY)
                    continue
                print(f"kleio: the daemon refused the end of the trial: {exc}", file=sys.stderr)
                return
            except DaemonUnavailable:
                continue
        print(
            f"kleio: kleiod did not record the end of trial {self.spec.trial_id[:12]}; it "
            "will show as lost once its lease expires",
            file=sys.stderr,
        )

    def _database_trouble(self, error: str | None) -> None:
        """Say in the trial's output when the journal cannot be written, and when it can
        again: the user sees it where they look, and the journal keeps it."""
        if (error is None) == (self._told_trouble is None):
            return
        if error is not None:
            text = (
                f"kleio: kleiod cannot write the journal now ({error}); it keeps every "
                "record and retries\n"
            )
        else:
            text = "kleio: the journal is writable again; no record was lost\n"
        self._told_trouble = error
        if self._echoing():
            _write(2, text.encode())
        if self._channel is not None:
            self._channel.record(protocol.OUTPUT, {"stream": "stderr", "data": text.encode()})

    def _revive_daemon(self) -> None:
        """No daemon for ``DAEMON_GRACE`` seconds (it crashed, or was stopped and nothing
        started another): start one, so that the trial's records and end are kept."""
        runtime = Path(self.spec.runtime_dir)
        if lock.is_held(runtime) or launcher.stopped_by_user(runtime):
            self._daemon_absent_since = None
            return
        now = time.monotonic()
        if self._daemon_absent_since is None:
            self._daemon_absent_since = now
        if now - self._daemon_absent_since < DAEMON_GRACE or now < self._next_launch:
            return
        self._next_launch = now + DAEMON_GRACE
        try:
            config = dataclasses.replace(resolve(), runtime_dir=runtime)
            note = launcher.start(config, timeout=DAEMON_START_WAIT)
        except (RuntimeSetupError, OSError) as exc:
            note = f"could not start kleiod: {exc}"
        if note:
            _write(2, f"kleio: {note}\n".encode())

    def _call_quietly(self, control: ControlClient, cmd: str, **args: Any) -> None:
        try:
            control.call(cmd, id=self.spec.trial_id, execution=self.spec.execution, **args)
        except KleioError:
            pass  # a lost heartbeat is recovered by the next one

    # -- signals -----------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        for signum in FORWARDED:
            signal.signal(signum, self._on_signal)
        # A handler, not SIG_IGN: an ignored SIGHUP would be inherited by the trial.
        signal.signal(signal.SIGHUP, _ignore)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        process = self._process
        if process is not None and process.returncode is not None:
            self._after_the_end(signum)
            return
        if signum == signal.SIGWINCH:  # the caller's terminal was resized
            for output in self._outputs:
                if output.terminal:
                    terminal.copy_window_size(output.caller, output.ours)
        now = time.monotonic()
        if self._echo_of(signum, now):
            return
        if signum in self._recorded:
            self.signals.append(signal.Signals(signum).name)
        kill = (
            self.spec.escalate
            and signum == signal.SIGINT
            and now - self._last_interrupt < KILL_WINDOW
        )
        if signum == signal.SIGINT:
            self._last_interrupt = now
        if process is None:
            return
        if kill:
            signum = signal.SIGKILL
        elif signum == signal.SIGTSTP:
            signum = signal.SIGSTOP  # SIGTSTP is discarded in an orphaned process group
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _after_the_end(self, signum: int) -> None:
        """The trial has ended: a person's Ctrl-C (or Ctrl-\\) now only stops waiting for
        an absent daemon.  A SIGTERM does not: the end of a batch job sends one to every
        process, which the supervisor may take after its trial died of it, and the end
        is still to be recorded before the SIGKILL that follows."""
        if signum not in GIVE_UP or self._echo_of(signum, time.monotonic()):
            return
        self._given_up = True
        if self._channel is not None:
            self._channel.abort()

    def _echo_of(self, signum: int, now: float) -> bool:
        """The same signal again within ``ECHO_WINDOW``: one signal sent to every process
        of a batch job (scancel, --signal), reaching this supervisor directly and again
        through the `kleio` in front of it.  Taken once; a person's second Ctrl-C is slower.
        Each signal has its own clock: SLURM's SIGCONT before a SIGTERM hides no echo."""
        last = self._last_signal.get(signum)
        self._last_signal[signum] = now
        return last is not None and now - last < ECHO_WINDOW


def _ignore(_signum: int, _frame: Any) -> None:
    """The terminal hung up: the trial runs on."""


def _write(fd: int, data: bytes) -> None:
    """Echo to the caller's terminal; a terminal that went away loses nothing stored."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kleio_supervisor SPEC_JSON", file=sys.stderr)
        return 2
    return Supervisor(SupervisorSpec.from_json(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
