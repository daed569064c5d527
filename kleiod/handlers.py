"""The daemon's verbs: what each control request does."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kleio_client import protocol
from kleio_client.version import __version__
from kleiod import reservation, states
from kleiod.config import Config
from kleiod.diff import compare
from kleiod.errors import BadRequest, TrialNotFound
from kleiod.fingerprint import Fields
from kleiod.ingest import Ingest
from kleiod.storage.base import Claim, ExecutionEnd, Storage, TrialSpec


@dataclass(frozen=True)
class DaemonContext:
    config: Config
    storage: Storage
    ingest: Ingest
    started: float
    stop: Callable[[], None]
    refused: Callable[[], int]


class Handlers:
    def __init__(self, ctx: DaemonContext) -> None:
        self._ctx = ctx
        self._storage = ctx.storage

    def table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "ping": self.ping,
            "status": self.status,
            "stop": self.stop,
            "reserve": self.reserve,
            "start_execution": self.start_execution,
            "heartbeat": self.heartbeat,
            "end_execution": self.end_execution,
            "resolve": self.resolve,
            "ls": self.ls,
            "info": self.info,
            "trial": self.trial,
            "stats": self.stats,
            "cat": self.cat,
            "diff": self.diff,
        }

    # -- the daemon -----------------------------------------------------------

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": __version__,
                "database": self._ctx.config.database_redacted}

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
        }

    def stop(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ctx.stop()
        return {"pid": os.getpid()}

    # -- executions -------------------------------------------------------------

    def reserve(self, args: dict[str, Any]) -> dict[str, Any]:
        allow = args.get("allow") or {}
        request = reservation.Request(
            spec=TrialSpec(**args["spec"]),
            capture=dict(args.get("capture") or {}),
            fields=Fields.from_wire(args.get("fields")),
            allowed=reservation.Allowed(code=bool(allow.get("code")),
                                        environment=bool(allow.get("environment"))),
            exact=bool(args.get("exact")),
        )
        now = time.time()
        claim = Claim(host=str(args.get("host") or socket.gethostname()), pid=int(args["pid"]),
                      now=now, lease_until=now + self._ctx.config.lease_seconds)
        outcome = reservation.reserve(self._storage, request, claim)
        return {
            "id": outcome.reservation.trial_id,
            "execution": outcome.reservation.execution,
            "previous_status": outcome.reservation.previous_status,
            "branched_from": outcome.branched_from,
            "changes": list(outcome.changes),
            "lease_seconds": self._ctx.config.lease_seconds,
        }

    def start_execution(self, args: dict[str, Any]) -> None:
        self._storage.start_execution(str(args["id"]), int(args["execution"]), int(args["pid"]))

    def heartbeat(self, args: dict[str, Any]) -> dict[str, Any]:
        until = time.time() + self._ctx.config.lease_seconds
        owner = self._storage.renew_lease(str(args["id"]), int(args["execution"]), until)
        return {"owner": owner}

    def end_execution(self, args: dict[str, Any]) -> dict[str, Any]:
        trial_id, execution = str(args["id"]), int(args["execution"])
        signals = [str(s) for s in args.get("signals") or []]
        exit_code = args.get("exit_code")
        status = states.final_status(-1 if exit_code is None else int(exit_code), signals)
        self._ctx.ingest.commit()
        self._storage.end_execution(
            ExecutionEnd(trial_id, execution, status, exit_code, signals, time.time())
        )
        return {"status": status}

    # -- reading the journal ---------------------------------------------------------

    def resolve(self, args: dict[str, Any]) -> str:
        return self._storage.resolve_id(str(args["id"]))

    def ls(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        return self._storage.list_trials()

    def trial(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._storage.get_trial(self._storage.resolve_id(str(args["id"])))

    def info(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ctx.ingest.commit()
        trial = self._storage.get_trial(self._storage.resolve_id(str(args["id"])))
        records = self._storage.read_records(trial["id"], [protocol.STATISTIC, protocol.ARTIFACT])
        trial["statistics"] = sum(1 for r in records if r["kind"] == protocol.STATISTIC)
        trial["artifacts"] = [
            {**r["body"], "execution": r["execution"], "position": r["position"]}
            for r in records if r["kind"] == protocol.ARTIFACT
        ]
        capture = self._storage.capture(trial["id"]) or {}
        for part in ("configuration", "code", "environment"):
            trial[part] = capture.get(part)
        return trial

    def diff(self, args: dict[str, Any]) -> dict[str, Any]:
        sides = [self._execution_capture(str(args[side])) for side in ("a", "b")]
        labels = (sides[0][0], sides[1][0])
        return {"a": labels[0], "b": labels[1],
                **compare(sides[0][1], sides[1][1], labels)}

    def _execution_capture(self, name: str) -> tuple[str, dict[str, Any]]:
        """``ID`` (its latest execution) or ``ID:N`` (its execution N), and its capture."""
        prefix, _, number = name.partition(":")
        trial_id = self._storage.resolve_id(prefix)
        if number and not number.isdigit():
            raise BadRequest(f"{name!r}: an execution is named ID:N, N a number")
        capture = self._storage.capture(trial_id, int(number) if number else None)
        if capture is None:
            raise TrialNotFound(f"{name}: no captured execution; see `kleio info {prefix}`")
        return (f"{trial_id[:12]}:{number}" if number else trial_id[:12]), capture

    def stats(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        self._ctx.ingest.commit()
        trial_id = self._storage.resolve_id(str(args["id"]))
        rows = [
            {"position": r["position"], "execution": r["execution"], "record": r["body"]}
            for r in self._storage.read_records(trial_id, [protocol.STATISTIC])
        ]
        sort = args.get("sort")
        if sort:
            if rows and not any(sort in row["record"] for row in rows):
                keys = sorted({k for row in rows for k in row["record"]})
                raise BadRequest(f"no record has the key {sort!r}; keys: {', '.join(keys)}")
            rows.sort(key=_sort_key(str(sort)))
        return rows

    def cat(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        self._ctx.ingest.commit()
        trial_id = self._storage.resolve_id(str(args["id"]))
        return [
            {"execution": r["execution"], "stream": r["body"]["stream"], "data": r["body"]["data"]}
            for r in self._storage.read_records(trial_id, [protocol.OUTPUT])
        ]


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    """Numbers first (by value), then strings, then anything else, then records without it."""

    def rank(row: dict[str, Any]) -> tuple[int, Any]:
        if key not in row["record"]:
            return (4, 0)
        value = row["record"][key]
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            return (0, value)
        if isinstance(value, str):
            return (1, value)
        if isinstance(value, float):
            return (2, 0)
        return (3, repr(value))

    return rank
