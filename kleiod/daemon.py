"""kleiod: the per-user daemon, in the foreground (for systemd).

It holds the lock of its runtime directory, owns the database connection,
serves the control socket, batches the ingest socket into storage and
publishes live output.  It never holds a trial's file descriptors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from kleio_client import protocol
from kleio_client import spill as producer_spill
from kleio_client.version import __version__
from kleio_runtime import launcher
from kleio_runtime.config import Config, ensure_private_dir, resolve
from kleio_runtime.errors import RuntimeSetupError
from kleio_runtime.lock import PidLock
from kleiod import notify
from kleiod.controller import Controller
from kleiod.errors import ConfigError, KleiodError, StorageError
from kleiod.handlers import DaemonContext, Handlers
from kleiod.ingest import Buffering, Ingest
from kleiod.live import Live
from kleiod.memory import Trimmer
from kleiod.running import DRAIN_SECONDS, RunningExecutions
from kleiod.spawner import Spawner
from kleiod.spill import Spill, spill_directory
from kleiod.storage import open_storage
from kleiod.storage.base import Storage
from kleiod.wakeup import Wakeup, signal_wakeup

log = logging.getLogger(__name__)

IDLE_POLL_MS = 200
INGEST_BURST = 2000
# Requests answered in a row at most this long: a reader's pages (`kleio stats`), each tens
# of milliseconds, take turns with the ingest, whose records stay committed within 200 ms.
CONTROL_SLICE = 0.02


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._stopping = False
        self._on_purpose = False
        self._drain_until = 0.0
        self._drain_logged = False
        self.spawner = Spawner()
        self.running = RunningExecutions(config.lease_seconds)
        self.trimmer = Trimmer()

    def stop(self, on_purpose: bool = True) -> None:
        """Stop serving.  On purpose (`kleio daemon stop`, Ctrl-C, `systemctl stop`), the
        supervisors of running trials start no other daemon; otherwise (a SIGTERM from the
        end of the batch job that happened to start this daemon, a shutdown) they do."""
        if not self._stopping:
            self._drain_until = time.monotonic() + DRAIN_SECONDS
        self._stopping = True
        self._on_purpose = self._on_purpose or on_purpose

    def _serving(self) -> bool:
        """Until stopped; after a stop that was not on purpose, while executions it serves
        have not reported their end (see kleiod.running)."""
        if not self._stopping:
            return True
        if self._on_purpose or time.monotonic() >= self._drain_until:
            return False
        running = self.running.count()
        if running and not self._drain_logged:
            self._drain_logged = True
            log.info(
                "terminated: serving %d running execution(s) until they end, at most %.0f s",
                running,
                max(0.0, self._drain_until - time.monotonic()),
            )
        return running > 0

    def serve(self) -> None:
        runtime = ensure_private_dir(self.config.runtime_dir)
        lock = PidLock(runtime)
        lock.acquire()
        launcher.clear_stopped(runtime)
        try:
            storage = _opened_storage(self.config)
            try:
                self._serve_with(storage)
            finally:
                storage.close()
            if self._on_purpose:
                launcher.mark_stopped(runtime)
        finally:
            lock.release()

    def _serve_with(self, storage: Storage) -> None:
        endpoints = protocol.Endpoints.in_directory(str(self.config.runtime_dir))
        context = zmq.Context()
        publish = context.socket(zmq.PUB)
        publish.bind(endpoints.publish)
        ingest_socket = _router(context, endpoints.ingest, INGEST_QUEUE)

        publish.setsockopt(zmq.LINGER, 0)
        spill = Spill(spill_directory(self.config))
        spill.adopt()
        producer_spills = Path(self.config.runtime_dir) / producer_spill.DIRECTORY
        buffering = Buffering(spill, self.config.hold_bytes, producer_spills)
        ingest = Ingest(storage, ingest_socket, Live(publish.send_multipart), buffering)
        ingest.adopt_orphans()
        controller: Controller | None = None
        ctx = DaemonContext(
            self.config,
            storage,
            ingest,
            time.time(),
            self.stop,
            lambda: controller.refused if controller else 0,
            self.spawner,
            self.running,
        )
        controller = Controller(Handlers(ctx).table())
        control_socket = _router(context, endpoints.control)
        log.info(
            "kleiod %s serving %s on %s (pid %s)",
            __version__,
            self.config.database_redacted,
            self.config.runtime_dir,
            os.getpid(),
        )
        notify.ready(f"serving {self.config.database_redacted} on {self.config.runtime_dir}")
        try:
            with signal_wakeup() as wakeup:
                self._loop(ingest, ingest_socket, controller, control_socket, storage, wakeup)
        finally:
            notify.stopping()
            ingest.close()
            for sock in (control_socket, ingest_socket, publish):
                sock.close(0)
            context.term()
            log.info("kleiod stopped")

    def _loop(
        self,
        ingest: Ingest,
        ingest_socket: zmq.Socket,
        controller: Controller,
        control_socket: zmq.Socket,
        storage: Storage,
        wakeup: Wakeup,
    ) -> None:
        sweep_every = max(0.25, self.config.lease_seconds / 4)
        next_sweep = time.monotonic() + sweep_every
        poller = zmq.Poller()
        poller.register(ingest_socket, zmq.POLLIN)
        poller.register(control_socket, zmq.POLLIN)
        if wakeup.fileno() is not None:
            poller.register(wakeup.fileno(), zmq.POLLIN)
        while self._serving():
            due = ingest.due_in()
            timeout = IDLE_POLL_MS if due is None else int(due * 1000)
            poller.modify(ingest_socket, zmq.POLLIN if ingest.accepting() else 0)
            events = dict(poller.poll(timeout))
            if wakeup.fileno() in events:
                wakeup.drain()
                events.pop(wakeup.fileno())
            if not events:
                self.trimmer.idle(ingest.counters.committed)
            if ingest_socket in events:
                _drain(ingest_socket, INGEST_BURST, lambda frames: _accept(ingest, frames))
            if control_socket in events:
                _drain(
                    control_socket,
                    64,
                    lambda frames: _answer(controller, control_socket, frames),
                    CONTROL_SLICE,
                )
            if ingest.due_in() == 0.0:
                _commit_quietly(ingest)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_every
                self._sweep(ingest, storage)

    def _sweep(self, ingest: Ingest, storage: Storage) -> None:
        """Reap spawned trials, take in dead producers' spills, expire leases."""
        try:
            self.spawner.reap()
            ingest.adopt_orphans()
            if self._leases_trusted(ingest):
                _expire_leases(storage)
        except Exception:  # the one logged catch-all of the sweep: it never stops the daemon
            log.exception("a sweep failed; the next one tries again")

    def _leases_trusted(self, ingest: Ingest) -> bool:
        """Not while the database is away, nor for a lease period after it is back: the
        heartbeats it missed meanwhile do not make a trial lost."""
        if ingest.database_away():
            return False
        back = ingest.back_at
        return back is None or time.monotonic() - back >= self.config.lease_seconds


# Messages queued per producer before zmq stops reading it: the daemon's memory stays
# bounded under a flood (the producer buffers on its side, then spills).
INGEST_QUEUE = 256


def _router(context: zmq.Context, endpoint: str, queue: int = 10_000) -> zmq.Socket:
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.RCVHWM, queue)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.bind(endpoint)
    return sock


def _drain(sock: zmq.Socket, limit: int, handle: Any, seconds: float | None = None) -> None:
    """Handle up to ``limit`` waiting messages, and for ``seconds`` at most."""
    until = None if seconds is None else time.monotonic() + seconds
    for _ in range(limit):
        if until is not None and time.monotonic() >= until:
            return
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        handle(frames)


def _accept(ingest: Ingest, frames: list[bytes]) -> None:
    if len(frames) != 2:
        ingest.counters.refused_messages += 1
        return
    try:
        ingest.accept(frames[0], frames[1])
    except StorageError as exc:
        log.error("%s", exc)
    except Exception:  # the one logged catch-all of the ingest loop: no message stops it
        ingest.counters.refused_messages += 1
        log.exception("refused an ingest message that its handler could not take")


def _answer(controller: Controller, sock: zmq.Socket, frames: list[bytes]) -> None:
    if len(frames) != 2:
        controller.refused += 1
        return
    sock.send_multipart([frames[0], controller.handle(frames[1])])


def _expire_leases(storage: Storage) -> None:
    try:
        for trial_id in storage.expire_leases():
            log.warning("trial %s is lost: its lease expired", trial_id)
    except StorageError as exc:
        log.error("%s", exc)


def _commit_quietly(ingest: Ingest) -> None:
    try:
        ingest.commit()
    except StorageError as exc:
        log.error("%s", exc)


def _opened_storage(config: Config) -> Storage:
    """The journal of ``config``; a path it cannot use is named with the setting it came
    from, not as an exception."""
    try:
        return open_storage(
            config.database, config.data_dir / "artifact-cache", config.allow_network_filesystem
        )
    except OSError as exc:
        if exc.filename is None:
            raise
        raise ConfigError(
            f"cannot use {exc.filename}: {(exc.strerror or str(exc)).lower()}; the journal "
            f"is {config.database_redacted}: set KLEIO_DATABASE, or KLEIO_DATA_DIR for the "
            "default journal"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kleiod", description="Kleio's per-user daemon.")
    parser.add_argument("--database", help="database URL (default: the embedded SQLite journal)")
    parser.add_argument("--runtime-dir", help="directory of the daemon's sockets")
    parser.add_argument(
        "--allow-network-filesystem",
        action="store_true",
        default=None,
        help="open a SQLite journal on NFS, Lustre, GPFS... (one machine at a time writes it)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--version", action="version", version=f"kleiod {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s kleiod[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = resolve(
            {
                "database": args.database,
                "runtime_dir": args.runtime_dir,
                "allow_network_filesystem": args.allow_network_filesystem,
            }
        )
        daemon = Daemon(config)
        os.chdir("/")  # hold no directory of the user's
        os.umask(0o077)  # sockets, journal, spills: the user's alone
        signal.signal(signal.SIGINT, lambda *_: daemon.stop())
        # Under systemd a SIGTERM is `systemctl stop`; elsewhere it is whatever ends the
        # processes of the job or session that started this daemon, not the user's wish.
        under_systemd = "INVOCATION_ID" in os.environ
        signal.signal(signal.SIGTERM, lambda *_: daemon.stop(on_purpose=under_systemd))
        # SLURM's preemption warning (`--signal=USR1`) reaches every process of a job step,
        # this daemon too when a `kleio` in that step started it: it is for the trials.
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)
        daemon.serve()
    except (KleiodError, RuntimeSetupError) as exc:
        print(f"kleiod: {exc}", file=sys.stderr)
        return 1
    return 0
