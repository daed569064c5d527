"""The executions of trials in MongoDB: reservation, leases, ends, status history.

Owns the reservation, one ``find_one_and_update`` on the trial that also
increments its execution number (the fencing token) and takes over a
running trial only when its lease has expired; the refusal that names the
owner; the start of an execution, the renewal and expiry of leases, the end
of an execution, and every document of status history.
"""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from kleiod import states
from kleiod.errors import TrialNotFound
from kleiod.storage.base import (
    REMOVING,
    Claim,
    ExecutionEnd,
    Reservation,
    TrialSpec,
    already_running,
    branch_of_removed,
    combined_end,
    completed,
    participant_end,
    stored_capture,
)
from kleiod.storage.mongo_connection import MongoConnection

log = logging.getLogger(__name__)

RESUMABLE = sorted(states.RESUMABLE)


def capture_fields(capture: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of an execution that hold its capture (base.stored_capture)."""
    text, configuration = stored_capture(capture)
    return {"capture": text, "configuration": configuration}


def record_status(
    db: Database[dict[str, Any]],
    trial_id: str,
    execution: int,
    status: str,
    at: float,
    session: ClientSession | None = None,
) -> None:
    """One change of a trial's status, kept as history (also by an import)."""
    db.history.insert_one(
        {"trial_id": trial_id, "execution": execution, "status": status, "at": at},
        session=session,
    )


class MongoExecutions(MongoConnection):
    """Reserving trials and recording their executions."""

    def reserve(
        self, spec: TrialSpec, claim: Claim, capture: dict[str, Any] | None = None
    ) -> Reservation:
        with self._t(f"reserving trial {spec.id}"):
            now = self.clock()
            self._create(spec, now)
            joined = self._join(spec.id, claim, now)
            if joined is not None:
                return joined
            before = self._db.trials.find_one_and_update(
                {
                    "_id": spec.id,
                    "$or": [
                        {"status": {"$in": RESUMABLE}},
                        {"status": states.RUNNING, "lease_until": {"$not": {"$gte": now}}},
                    ],
                },
                {
                    "$set": {
                        "status": states.RUNNING,
                        "owner_host": claim.host,
                        "owner_pid": claim.pid,
                        "owner_since": now,
                        "lease_until": now + claim.lease_seconds,
                        "updated": now,
                        "owner_launch": claim.launch,
                    },
                    "$inc": {"executions": 1},
                },
                return_document=ReturnDocument.BEFORE,
            )
            if before is None:  # another has it: of this launch, if it reserved it meanwhile
                return self._join(spec.id, claim, now) or self._refuse(spec.id)
            execution = int(before["executions"]) + 1
            previous = (
                None if before["status"] == states.NEW and execution == 1 else str(before["status"])
            )
            if before["status"] == states.RUNNING:  # its lease had expired
                self._mark(spec.id, execution - 1, states.LOST, now - 1e-6)
                previous = states.LOST
            # An upsert: a process of the same launch may have joined it already (_join).
            self._db.executions.update_one(
                {"trial_id": spec.id, "number": execution},
                {
                    "$set": {
                        "host": claim.host,
                        "pid": claim.pid,
                        "started": now,
                        "ended": None,
                        "exit_code": None,
                        "status": states.RUNNING,
                        "signals": [],
                        "launch": claim.launch,
                        **capture_fields(capture),
                    },
                    "$inc": {"participants": 1},
                    "$setOnInsert": {"ends": []},
                },
                upsert=True,
            )
            record_status(self._db, spec.id, execution, states.RUNNING, now)
        return Reservation(spec.id, execution, previous)

    def _join(self, trial_id: str, claim: Claim, now: float) -> Reservation | None:
        """One more process of the launch whose execution runs: it joins that execution."""
        if claim.launch is None:
            return None
        trial = self._db.trials.find_one(
            {
                "_id": trial_id,
                "status": states.RUNNING,
                "owner_launch": claim.launch,
                "lease_until": {"$gte": now},
            },
            {"executions": 1},
        )
        if trial is None:
            return None
        try:  # an upsert: the process that reserved it may not have written it yet
            self._db.executions.update_one(
                {"trial_id": trial_id, "number": trial["executions"], "status": states.RUNNING},
                {"$inc": {"participants": 1}, "$setOnInsert": {"ends": []}},
                upsert=True,
            )
        except DuplicateKeyError:  # it ended meanwhile: reserve as usual
            return None
        return Reservation(trial_id, int(trial["executions"]), states.RUNNING, joined=True)

    def _create(self, spec: TrialSpec, now: float) -> None:
        result = self._db.trials.update_one(
            {"_id": spec.id},
            {
                "$setOnInsert": {
                    "parent": spec.parent,
                    "status": states.NEW,
                    "command": spec.command,
                    "identity": json.dumps(spec.identity, sort_keys=True),
                    "cwd": spec.cwd,
                    "user": spec.user,
                    "created": now,
                    "updated": now,
                    "executions": 0,
                    "owner_host": None,
                    "owner_pid": None,
                    "owner_since": None,
                    "lease_until": None,
                    "root": spec.root or spec.id,
                    "branch_kind": spec.branch_kind,
                    "branch_point": spec.branch_point,
                }
            },
            upsert=True,
        )
        if result.upserted_id is None:
            return
        if spec.parent is not None and not self._db.trials.count_documents(
            {"_id": spec.parent, "status": {"$ne": REMOVING}}, limit=1
        ):  # removed since it was read (mongo_removal: checked after the branch is made)
            self._db.trials.delete_one({"_id": spec.id, "executions": 0})
            raise branch_of_removed(spec.parent)
        record_status(self._db, spec.id, 0, states.NEW, now - 2e-6)

    def _refuse(self, trial_id: str) -> NoReturn:
        trial = self._db.trials.find_one({"_id": trial_id}) or {}
        if trial.get("status") in (REMOVING, None):
            raise TrialNotFound(f"trial {trial_id[:12]} is being removed (kleio rm)")
        if trial.get("status") == states.COMPLETED:
            raise completed(trial_id)
        raise already_running(
            trial_id, trial.get("owner_host"), trial.get("owner_pid"), trial.get("owner_since")
        )

    def _mark(
        self,
        trial_id: str,
        execution: int,
        status: str,
        at: float,
        session: ClientSession | None = None,
    ) -> None:
        self._db.executions.update_one(
            {"trial_id": trial_id, "number": execution},
            {"$set": {"status": status, "ended": at}},
            session=session,
        )
        record_status(self._db, trial_id, execution, status, at, session)

    def start_execution(self, trial_id: str, execution: int, pid: int) -> None:
        with self._t("recording an execution's start"):
            self._db.executions.update_one(
                {"trial_id": trial_id, "number": execution}, {"$set": {"pid": pid}}
            )
            self._db.trials.update_one(
                {"_id": trial_id, "executions": execution}, {"$set": {"owner_pid": pid}}
            )

    def renew_lease(self, trial_id: str, execution: int, seconds: float) -> bool:
        with self._t("renewing a lease"):
            now = self.clock()
            before = self._db.trials.find_one_and_update(
                {
                    "_id": trial_id,
                    "executions": execution,
                    "status": {"$in": [states.RUNNING, states.LOST]},
                },
                {"$set": {"lease_until": now + seconds, "status": states.RUNNING}},
                return_document=ReturnDocument.BEFORE,
            )
            if before is None:
                return False
            if before["status"] == states.LOST:
                self._db.executions.update_one(
                    {"trial_id": trial_id, "number": execution},
                    {"$set": {"status": states.RUNNING, "ended": None}},
                )
                record_status(self._db, trial_id, execution, states.RUNNING, now)
        return True

    def end_execution(self, end: ExecutionEnd) -> None:
        with self._t("recording an execution's end"):
            # One process of it ended; the last to end (older documents count none) ends it.
            # Once it ended (none left running, an end kept), a report sent again is none.
            after = self._db.executions.find_one_and_update(
                {
                    "trial_id": end.trial_id,
                    "number": end.execution,
                    "$or": [{"participants": {"$gt": 0}}, {"ends.0": {"$exists": False}}],
                },
                {"$inc": {"participants": -1}, "$push": {"ends": participant_end(end)}},
                return_document=ReturnDocument.AFTER,
            )
            if after is None or after["participants"] > 0:
                return
            end = combined_end(end, after["ends"])
            now = self.clock()
            self._db.executions.update_one(
                {"trial_id": end.trial_id, "number": end.execution},
                {"$set": {"ended": now, "exit_code": end.exit_code, "signals": end.signals}},
            )
            self._db.executions.update_one(
                {
                    "trial_id": end.trial_id,
                    "number": end.execution,
                    "status": {"$in": [states.RUNNING, states.LOST]},
                },
                {"$set": {"status": end.status}},
            )
            done = self._db.trials.update_one(
                {
                    "_id": end.trial_id,
                    "executions": end.execution,
                    "status": {"$in": [states.RUNNING, states.LOST]},
                },
                {"$set": {"status": end.status, "updated": now, "lease_until": None}},
            )
            if done.modified_count:
                record_status(self._db, end.trial_id, end.execution, end.status, now)

    def expire_leases(self) -> list[str]:
        expired = []
        with self._t("expiring leases"):
            now = self.clock()
            for trial in self._db.trials.find(
                {"status": states.RUNNING, "lease_until": {"$not": {"$gte": now}}}
            ):
                try:
                    if self._expire(trial, now):
                        expired.append(str(trial["_id"]))
                except OperationFailure as exc:
                    if not exc.has_error_label("TransientTransactionError"):
                        raise
                    log.info(
                        "trial %s: its lease ended, but an unfinished transaction holds it "
                        "(a daemon that died while writing holds it for up to a minute); "
                        "trying again at the next sweep",
                        trial["_id"],
                    )
        return expired

    def _expire(self, trial: dict[str, Any], now: float) -> bool:
        """Declare one trial lost, in a transaction where the deployment runs them: a
        plain write would wait, and the daemon with it, for as long as another daemon's
        unfinished transaction holds the trial (a minute, when that daemon died in it);
        in a transaction it conflicts at once, and the trial and its execution change
        together."""
        with self._transaction() as session:
            done = self._db.trials.update_one(
                {
                    "_id": trial["_id"],
                    "executions": trial["executions"],
                    "status": states.RUNNING,
                    "lease_until": {"$not": {"$gte": now}},
                },
                {"$set": {"status": states.LOST, "updated": now, "lease_until": None}},
                session=session,
            )
            if not done.modified_count:
                return False
            self._mark(trial["_id"], trial["executions"], states.LOST, now, session)
            return True
