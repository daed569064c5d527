"""The daemon's verbs: what each control request does."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kleio_client import protocol
from kleio_client.protocol import SupervisorSpec
from kleio_client.version import __version__
from kleio_runtime.config import Config
from kleiod import reservation, states, transfer
from kleiod.errors import BadRequest
from kleiod.fingerprint import Fields
from kleiod.ingest import Ingest
from kleiod.queries import Queries
from kleiod.removal import Removal
from kleiod.running import RunningExecutions
from kleiod.spawner import Spawner
from kleiod.storage.base import Claim, ExecutionEnd, Storage, TrialSpec


@dataclass(frozen=True)
class DaemonContext:
    config: Config
    storage: Storage
    ingest: Ingest
    started: float
    stop: Callable[[], None]
    refused: Callable[[], int]
    spawner: Spawner
    running: RunningExecutions


class Handlers:
    def __init__(self, ctx: DaemonContext) -> None:
        self._ctx = ctx
        self._storage = ctx.storage

    def table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        database_verbs = {
            "reserve": self.reserve,
            "start_execution": self.start_execution,
            "end_execution": self.end_execution,
            **Queries(self._ctx.storage, self._ctx.ingest.commit, self._ctx.ingest.live).table(),
            **Removal(self._ctx.storage, self._ctx.ingest.commit).table(),
            "export": self.export,
            "import": self.import_,
            "tag": self.tag,
        }
        return {
            "ping": self.ping,
            "status": self.status,
            "stop": self.stop,
            "heartbeat": self.heartbeat,
            "spawn": self.spawn,
            **{name: self._when_database(verb) for name, verb in database_verbs.items()},
        }

    def _when_database(
        self, verb: Callable[[dict[str, Any]], Any]
    ) -> Callable[[dict[str, Any]], Any]:
        def guarded(args: dict[str, Any]) -> Any:
            self._ctx.ingest.ensure_database()
            return verb(args)

        return guarded

    # -- the daemon -----------------------------------------------------------

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "database": self._ctx.config.database_redacted,
        }

    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        counters = self._ctx.ingest.counters
        return {
            "pid": os.getpid(),
            "version": __version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "database": self._ctx.config.database_redacted,
            "runtime_dir": str(self._ctx.config.runtime_dir),
            "started": self._ctx.started,
            "uptime": round(time.time() - self._ctx.started, 3),
            "records_committed": counters.committed,
            "duplicates_ignored": counters.duplicates,
            "refused_messages": counters.refused_messages + self._ctx.refused(),
            "refused_records": counters.refused_records,
            "out_of_order_dropped": counters.out_of_order,
            "database_error": self._ctx.ingest.database_error,
            "records_held": counters.held,
            "records_spilled": self._ctx.ingest.spill.records,
        }

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ctx.stop()
        return {"pid": os.getpid()}

    # -- executions -------------------------------------------------------------

    def reserve(self, args: dict[str, Any]) -> dict[str, Any]:
        allow = args.get("allow") or {}
        for name in ("allow", "fields"):
            if not isinstance(args.get(name) or {}, dict):
                raise BadRequest(f"reserve: {name} must be a map")
        request = reservation.Request(
            spec=TrialSpec(**args["spec"]),
            capture=dict(args.get("capture") or {}),
            fields=Fields.from_wire(args.get("fields")),
            allowed=reservation.Allowed(
                code=bool(allow.get("code")), environment=bool(allow.get("environment"))
            ),
            exact=bool(args.get("exact")),
        )
        launch = args.get("launch")
        claim = Claim(
            host=str(args.get("host") or socket.gethostname()),
            pid=int(args["pid"]),
            lease_seconds=self._ctx.config.lease_seconds,
            launch=None if launch is None else str(launch),
        )
        outcome = reservation.reserve(self._storage, request, claim)
        return {
            "id": outcome.reservation.trial_id,
            "execution": outcome.reservation.execution,
            "previous_status": outcome.reservation.previous_status,
            "joined": outcome.reservation.joined,
            "branched_from": outcome.branched_from,
            "changes": list(outcome.changes),
            "lease_seconds": self._ctx.config.lease_seconds,
        }

    def tag(self, args: dict[str, Any]) -> dict[str, Any]:
        trial_id = self._storage.resolve_id(str(args["id"]))
        add = [_tag(t) for t in args.get("add") or []]
        remove = [_tag(t) for t in args.get("remove") or []]
        return {"id": trial_id, "tags": self._storage.set_tags(trial_id, add, remove)}

    def export(self, args: dict[str, Any]) -> dict[str, int]:
        self._ctx.ingest.commit()
        return transfer.export(
            self._storage, [str(i) for i in args.get("ids") or []], Path(str(args["path"]))
        )

    def import_(self, args: dict[str, Any]) -> dict[str, int]:
        return transfer.import_(self._storage, Path(str(args["path"])))

    def start_execution(self, args: dict[str, Any]) -> None:
        self._storage.start_execution(str(args["id"]), int(args["execution"]), int(args["pid"]))
        self._ctx.running.seen(str(args["id"]), int(args["execution"]))

    def spawn(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start a detached trial's supervisor (the trial is reserved already)."""
        spec = SupervisorSpec(**{**args["spec"], "detached": True})
        return {"pid": self._ctx.spawner.spawn(spec, dict(args["env"]))}

    def heartbeat(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ctx.running.seen(str(args["id"]), int(args["execution"]))
        error = self._ctx.ingest.database_error
        if error is not None:  # renewed once it is back; no lease expires meanwhile
            return {"owner": True, "database_error": error}
        owner = self._storage.renew_lease(
            str(args["id"]), int(args["execution"]), self._ctx.config.lease_seconds
        )
        return {"owner": owner, "database_error": None}

    def end_execution(self, args: dict[str, Any]) -> dict[str, Any]:
        trial_id, execution = str(args["id"]), int(args["execution"])
        signals = [str(s) for s in args.get("signals") or []]
        exit_code = args.get("exit_code")
        self._ctx.ingest.commit()  # the trial's last records, its signals among them
        received = self._storage.logged_counts(trial_id, [protocol.SIGNAL]).get(execution, 0)
        status = states.final_status(
            -1 if exit_code is None else int(exit_code), signals, received=received > 0
        )
        self._storage.end_execution(ExecutionEnd(trial_id, execution, status, exit_code, signals))
        self._ctx.running.ended(trial_id, execution)
        return {"status": status}


def _tag(value: Any) -> str:
    text = str(value)
    if not text or len(text) > 100 or any(c.isspace() for c in text):
        raise BadRequest(f"a tag is 1 to 100 characters without spaces; not {text[:40]!r}")
    return text
