"""The storage interface every backend implements, and the values it exchanges.

Shaped by what one MongoDB document update can do atomically: a reservation
is one compare-and-set on the trial that also increments its execution
number (the fencing token).

Records are stored in *chunks*: a run of consecutive records of one kind
from one producer, kept as the msgpack bytes the producer sent.  A chunk is
idempotent on (trial, execution, producer, first seq); a record's *position*
is ``chunk commit order * POSITION_STRIDE + index in chunk``, the commit
order within the trial shared by statistics, artifacts and output.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import msgpack

from kleio_client import protocol
from kleiod import states
from kleiod.errors import (
    AlreadyRunning,
    AmbiguousId,
    ArtifactMissing,
    BadRequest,
    TrialCompleted,
    TrialNotFound,
)


@dataclass(frozen=True)
class TrialSpec:
    """What identifies a trial and describes its command, as captured by the CLI."""

    id: str
    command: list[str]
    identity: dict[str, Any]
    cwd: str
    user: str
    parent: str | None = None
    root: str | None = None  # the id of the command's own trial, for its branches
    # "change" (--allow-*-change), "branch" (kleio branch) or "scratch" (kleio pdb)
    branch_kind: str | None = None
    branch_point: int | None = None  # a position in the parent's effective history


@dataclass(frozen=True)
class Claim:
    """Who asks to run a trial now, and for how long its lease holds: from now on the
    database's clock (``Storage.clock``), whatever the asking daemon's clock says."""

    host: str
    pid: int
    lease_seconds: float
    # The launch this process is one of (``slurm:JOB.STEP`` for the tasks of one srun step,
    # or $KLEIO_LAUNCH): a claim of a trial running under the same launch joins its
    # execution instead of being refused as already running.
    launch: str | None = None


@dataclass(frozen=True)
class Reservation:
    trial_id: str
    execution: int
    previous_status: str | None
    joined: bool = False  # one more process of a launch whose execution runs already


SCRATCH = protocol.SCRATCH  # the branch kind of a `kleio pdb` session: hidden, never resumed
# The status of a trial while `kleio rm` removes it from a MongoDB journal, in steps: none
# of protocol.STATUSES, so that nothing reserves, resumes or branches it meanwhile.
REMOVING = "removing"

POSITION_STRIDE = 1 << 16  # more than protocol.MAX_RECORDS_PER_MESSAGE - 1


@dataclass(frozen=True)
class Chunk:
    """``count`` records of one kind from ``seq`` on; ``body`` packs their [kind, body] pairs."""

    trial_id: str
    execution: int
    producer: str
    seq: int
    count: int
    kind: str
    body: bytes


@dataclass(frozen=True)
class Appended:
    """What a write of chunks did: records stored, the (trial, execution) pairs refused,
    and the parts of the chunks that were new with their positions, in commit order
    (what live followers get)."""

    inserted: int
    refused: set[tuple[str, int]]
    stored: tuple[tuple[int, Chunk], ...] = ()


def completed(trial_id: str) -> TrialCompleted:
    return TrialCompleted(f"trial {trial_id[:12]} is completed; nothing to run")


def already_running(trial_id: str, host: Any, pid: Any, since: float | None) -> AlreadyRunning:
    when = (
        "an unknown time"
        if since is None
        else datetime.datetime.fromtimestamp(since).isoformat(sep=" ", timespec="seconds")
    )
    return AlreadyRunning(
        f"trial {trial_id[:12]} is already running on host {host}, pid {pid}, since {when}"
    )


def missing_artifact(sha256: str, store: str) -> ArtifactMissing:
    return ArtifactMissing(
        f"artifact {sha256[:12]} is not in the journal's store ({store}): "
        "the journal is damaged; restore its artifacts from a backup"
    )


def running_trial(trial_id: str, host: Any, pid: Any) -> AlreadyRunning:
    """Why a running trial is not removed."""
    return AlreadyRunning(
        f"trial {trial_id[:12]} is running (host {host}, pid {pid}); "
        "remove it once it has ended (Ctrl-C, or kill the pid)"
    )


def has_branches(trial_id: str, children: Sequence[str]) -> BadRequest:
    """Why a trial with branches is not removed alone: a branch reads its history."""
    named = ", ".join(sorted(c[:8] for c in children))
    return BadRequest(
        f"trial {trial_id[:12]} has branches ({named}), which read its history; "
        "add --with-branches to remove them too"
    )


def branch_of_removed(parent: str) -> TrialNotFound:
    return TrialNotFound(f"trial {parent[:12]} was removed; it has no branch to run")


def outside_branches(
    trial_ids: Iterable[str], parents: Iterable[tuple[str, str]]
) -> tuple[str, list[str]] | None:
    """Among (child, parent) pairs, a trial of ``trial_ids`` with children outside them,
    and those children; None when the trials are all the branches of one another."""
    chosen = set(trial_ids)
    outside: dict[str, list[str]] = {}
    for child, parent in parents:
        if parent in chosen and child not in chosen:
            outside.setdefault(parent, []).append(child)
    return next(iter(outside.items()), None)


def artifact_hashes_in(bodies: Iterable[bytes]) -> set[str]:
    """The sha256 of the artifacts whose records these chunk bodies pack."""
    return {pair[1]["sha256"] for body in bodies for pair in msgpack.unpackb(body, raw=False)}


def configuration_of(capture: Any) -> Any:
    """A capture's configuration as ``capture(id)`` gives it, or None."""
    return capture.get("configuration") if isinstance(capture, dict) else None


def stored_capture(capture: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """An execution's capture as stored (JSON text), and beside it its configuration
    (``null`` when it has none): what listing the trials reads of each, a few hundred
    bytes where the capture has many thousand.  An execution stored without it (by an
    older Kleio) is read from its capture."""
    if capture is None:
        return None, None
    return json.dumps(capture), json.dumps(configuration_of(capture))


def id_prefix(prefix: str) -> str:
    """The prefix, lowercased, or TrialNotFound when it cannot start an id."""
    if not prefix or not all(c in "0123456789abcdef" for c in prefix.lower()):
        raise TrialNotFound(f"{prefix!r} is not a trial id; `kleio ls` lists them")
    return prefix.lower()


def the_one(prefix: str, found: Sequence[str]) -> str:
    """The single id a prefix names among (at most two) ``found``."""
    if not found:
        raise TrialNotFound(f"no trial has an id starting with {prefix!r}; see `kleio ls`")
    if len(found) > 1:
        raise AmbiguousId(f"several trials have ids starting with {prefix!r}; give more digits")
    return str(found[0])


def uncovered_parts(chunk: Chunk, stored: Sequence[tuple[int, int]]) -> list[Chunk]:
    """Split ``chunk`` into the runs of records not inside the stored (seq, count) ranges."""
    if not stored:
        return [chunk]
    covered: set[int] = set()
    for seq, count in stored:
        covered.update(range(seq, seq + count))
    pairs = msgpack.unpackb(chunk.body, raw=False)
    parts: list[Chunk] = []
    run: list[Any] = []
    for index, pair in enumerate(pairs):
        seq = chunk.seq + index
        if seq not in covered:
            if not run:
                start = seq
            run.append(pair)
        if run and (seq in covered or index == len(pairs) - 1):
            body = msgpack.packb(run, use_bin_type=True)
            parts.append(
                Chunk(
                    chunk.trial_id,
                    chunk.execution,
                    chunk.producer,
                    start,
                    len(run),
                    chunk.kind,
                    body,
                )
            )
            run = []
    return parts


@dataclass(frozen=True)
class ExecutionEnd:
    trial_id: str
    execution: int
    status: str
    exit_code: int | None
    signals: list[str]


def participant_end(end: ExecutionEnd) -> dict[str, Any]:
    """How one process of an execution ended, as kept until the last one ends."""
    return {"exit_code": end.exit_code, "signals": end.signals, "status": end.status}


def combined_end(end: ExecutionEnd, ends: Sequence[dict[str, Any]]) -> ExecutionEnd:
    """The end of an execution whose processes (one, or a launch's) ended so."""
    if len(ends) <= 1:
        return end
    return replace(
        end,
        status=states.combined([e["status"] for e in ends]),
        exit_code=states.combined_exit([e["exit_code"] for e in ends]),
        signals=[s for e in ends for s in e["signals"]],
    )


@dataclass(frozen=True)
class Leftovers:
    """What :meth:`Storage.sweep_leftovers` deleted: how many pieces, how many bytes."""

    pieces: int = 0
    bytes: int = 0

    def __add__(self, other: Leftovers) -> Leftovers:
        return Leftovers(self.pieces + other.pieces, self.bytes + other.bytes)


@dataclass(frozen=True)
class Blob:
    """An artifact's bytes as stored, and when (on the database's clock) they were last
    stored: an upload of the same bytes stores them again, so a blob a trial is about to
    record is never old (what `kleio gc`'s grace period relies on)."""

    sha256: str
    size: int
    stored: float


class BlobWriter(Protocol):
    def write(self, offset: int, data: bytes) -> None: ...

    def finish(self) -> str:
        """Store the bytes written; return their sha256."""
        ...

    def abort(self) -> None: ...


class Storage(Protocol):
    """Every operation Kleio needs from a database."""

    url: str

    # trials and executions
    def reserve(
        self, spec: TrialSpec, claim: Claim, capture: dict[str, Any] | None = None
    ) -> Reservation:
        """Create the trial if new, then compare-and-set it to running as a new execution."""
        ...

    def candidates(self, root: str) -> list[dict[str, Any]]:
        """The command's trial and its change-branches, oldest update first, with captures."""
        ...

    def capture(self, trial_id: str, execution: int | None = None) -> dict[str, Any] | None: ...

    def end_position(self, trial_id: str) -> int | None: ...

    def start_execution(self, trial_id: str, execution: int, pid: int) -> None: ...

    def renew_lease(self, trial_id: str, execution: int, seconds: float) -> bool:
        """Hold the execution's lease ``seconds`` more (on the database's clock)."""
        ...

    def end_execution(self, end: ExecutionEnd) -> None: ...

    # records
    def append_chunks(self, chunks: Sequence[Chunk]) -> Appended:
        """Store the records not stored yet, refusing executions that no longer own their trial."""
        ...

    def expire_leases(self) -> list[str]:
        """Declare lost the running trials whose lease ended (on the database's clock);
        return their ids."""
        ...

    def clock(self) -> float:
        """The database's time, in seconds since the epoch: leases and the times of
        statuses are measured on it, never on a daemon's (two machines' clocks differ)."""
        ...

    def logged_counts(
        self, trial_id: str, kinds: Iterable[str], upto: int | None = None
    ) -> dict[int, int]:
        """Per execution, how many records of those kinds it logged (at or before ``upto``,
        to the chunk)."""
        ...

    def last_seq(self, trial_id: str, execution: int, producer: str) -> int:
        """The greatest seq stored for a producer (0 when none)."""
        ...

    def read_chunks(
        self,
        trial_id: str,
        kinds: Iterable[str],
        upto: int | None = None,
        bodies: bool = True,
        positions: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """The trial's chunks of those kinds as stored (``position`` of the first record,
        ``execution``, ``count``, packed ``body``, or None without ``bodies``), in position
        order; with ``upto``, those starting at or before it; with ``positions``, only
        those starting there.  Reading a million statistics this way makes no dict per
        record."""
        ...

    def read_records(
        self, trial_id: str, kinds: Iterable[str], after: int | None = None
    ) -> list[dict[str, Any]]:
        """The trial's own records of those kinds in position order (past ``after``)."""
        ...

    # blobs
    def begin_blob(self, upload: str) -> BlobWriter: ...

    def blob_path(self, sha256: str) -> str:
        """A local file holding the artifact's bytes; ArtifactMissing when none are
        stored under ``sha256``."""
        ...

    def list_blobs(self) -> list[Blob]:
        """Every artifact's bytes stored (not uploads in progress)."""
        ...

    def artifact_hashes(self) -> set[str]:
        """The sha256 of every artifact record stored: the bytes the trials reference."""
        ...

    def delete_blob(self, sha256: str, stored_before: float) -> int | None:
        """Delete the bytes stored under ``sha256`` unless they were stored (again) at or
        after ``stored_before``, on the database's clock, checked as they are deleted;
        the bytes freed, or None when kept (or not there)."""
        ...

    def sweep_leftovers(self, before: float, dry_run: bool = False) -> Leftovers:
        """Delete what uploads and deletions of artifacts cut short (a daemon killed) left
        behind, untouched since ``before``: spooled uploads never finished, bytes of a
        deletion cut short.  Bytes moved aside by a deletion go back where they were
        when nothing is there (the next `gc` judges them again): none is lost.  What was
        (with ``dry_run``: would be) deleted."""
        ...

    # removal
    def remove_trials(self, trial_ids: Sequence[str]) -> None:
        """Remove the trials and everything about them (executions and their captures,
        status history, records, tags; not the artifacts' bytes, see ``delete_blob``),
        all or none: TrialNotFound when one is not there, AlreadyRunning when one runs,
        BadRequest when a trial not among them is a branch of one.  Whatever another
        daemon does meanwhile (a reservation, a new branch, records of a late execution)
        is refused or removed too, never left pointing at a removed trial."""
        ...

    # queries
    def resolve_id(self, prefix: str) -> str: ...

    def list_trials(self, configurations: bool = False) -> list[dict[str, Any]]:
        """Every trial, oldest first; with ``configurations``, each with the
        ``configuration`` its latest execution that has a capture captured (None when
        none has, as ``capture(id)`` has it), read in the same one query: what ``ls``
        filters by options of the command line."""
        ...

    def set_tags(self, trial_id: str, add: Sequence[str], remove: Sequence[str]) -> list[str]:
        """Add and remove tags of a trial; return its tags, sorted."""
        ...

    def get_trial(self, trial_id: str) -> dict[str, Any]: ...

    # moving journals between databases
    def export_trial(self, trial_id: str) -> dict[str, Any]:
        """The trial as get_trial gives it, with each execution's capture."""
        ...

    def export_chunks(self, trial_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The trials' chunks as stored, in commit order."""
        ...

    def chunk_number(self, trial_id: str, execution: int, producer: str, seq: int) -> int | None:
        """Where this database holds the chunk with that key, if it does."""
        ...

    def import_trial(self, trial: dict[str, Any]) -> bool: ...

    def import_chunks(self, rows: Sequence[dict[str, Any]]) -> dict[int, int]: ...

    def close(self) -> None: ...
