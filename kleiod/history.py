"""A trial's effective history: what its statistics and artifacts are, once resumes and
branches are accounted for.  Nothing is copied: a branch reads its ancestors' histories up
to each branch point.

Per execution, in order:
* its *resume point* is the greatest position among the artifacts it loaded from earlier
  executions or ancestors (loads of its own artifacts never move it);
* with a resume point, the history is what came before, cut at the resume point, then the
  execution's own records;
* without one, an execution that logged restarted from scratch: the history is its own
  records (a branch that loads nothing inherits nothing);
* an execution that neither loaded nor logged leaves the history as it was.

An execution looking for its checkpoint (``loading``) sees what came before plus its own
records so far: logging a line before loading does not hide the checkpoint it resumes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kleio_client import protocol
from kleiod.errors import BadRequest
from kleiod.storage.base import Storage

LOGGED = (protocol.STATISTIC, protocol.ARTIFACT)


@dataclass(frozen=True)
class ExecutionView:
    """How one execution shaped the history."""

    number: int
    resume_point: int | None
    logged: int
    restarted: bool


def effective(
    storage: Storage,
    trial_id: str,
    loading: int | None = None,
    upto: int | None = None,
    statistics: bool = True,
) -> list[dict[str, Any]]:
    """Statistics and artifacts of the effective history, in position order.

    ``loading``: the execution about to load its checkpoint sees what came before plus its
    own records, even if it logged first.  ``upto``: the history as it stood at that
    position (a child's view of its parent: what the parent did later never changes it).
    Without ``statistics``, only artifacts: what a checkpoint lookup needs, without reading
    a million statistics.
    """
    return walk(storage, trial_id, loading, upto, statistics)[0]


def walk(
    storage: Storage,
    trial_id: str,
    loading: int | None = None,
    upto: int | None = None,
    statistics: bool = True,
) -> tuple[list[dict[str, Any]], list[ExecutionView]]:
    """The effective history, and how each execution shaped it."""
    trial = storage.get_trial(trial_id)
    history: list[dict[str, Any]] = []
    if trial["parent"] and trial["branch_point"] is not None:
        history = effective(
            storage, trial["parent"], upto=trial["branch_point"], statistics=statistics
        )
    kinds = (protocol.ARTIFACT, protocol.LOAD) + ((protocol.STATISTIC,) if statistics else ())
    by_execution: dict[int, list[dict[str, Any]]] = {}
    for record in storage.read_records(trial_id, kinds):
        if upto is not None and record["position"] > upto:
            continue
        record["trial"] = trial_id
        by_execution.setdefault(record["execution"], []).append(record)
    counts = storage.logged_counts(trial_id, LOGGED, upto)
    views = []
    for number in sorted(set(by_execution) | set(counts)):
        records = by_execution.get(number, [])
        logged = [r for r in records if r["kind"] != protocol.LOAD]
        resume = resume_point(records)
        restarted = resume is None and counts.get(number, 0) > 0 and number != loading
        if resume is not None:
            history = [r for r in history if r["position"] <= resume] + logged
        elif restarted:
            history = logged
        else:
            history = history + logged
        views.append(ExecutionView(number, resume, counts.get(number, 0), restarted))
    return history, views


def resume_point(records: list[dict[str, Any]]) -> int | None:
    own = {r["position"] for r in records if r["kind"] == protocol.ARTIFACT}
    loaded = [
        int(r["body"]["artifact_position"])
        for r in records
        if r["kind"] == protocol.LOAD and r["body"]["artifact_position"] not in own
    ]
    return max(loaded) if loaded else None


def artifacts(
    history: list[dict[str, Any]], filename: str | None, metadata: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        r
        for r in history
        if r["kind"] == protocol.ARTIFACT
        and (filename is None or r["body"]["filename"] == filename)
        and all(r["body"]["metadata"].get(k) == v for k, v in metadata.items())
    ]


def value_of(record: dict[str, Any], key: str) -> Any:
    body = record["body"]
    source = body["metadata"] if record["kind"] == protocol.ARTIFACT else body
    return source.get(key, _MISSING)


_MISSING = object()


def branch_point(history: list[dict[str, Any]], key: str | None, value: Any) -> int | None:
    """The position of the last record whose ``key`` is ``value`` (else the greatest <= it);
    without a key, the end of the history."""
    if key is None:
        return history[-1]["position"] if history else None
    keyed = [(r, value_of(r, key)) for r in history if value_of(r, key) is not _MISSING]
    if not keyed:
        keys = sorted(
            {
                k
                for r in history
                for k in (r["body"]["metadata"] if r["kind"] == protocol.ARTIFACT else r["body"])
            }
        )
        raise BadRequest(f"no record has the key {key!r}; keys: {', '.join(keys) or 'none'}")
    exact = [r for r, v in keyed if v == value]
    if exact:
        return int(exact[-1]["position"])
    below = [(v, r) for r, v in keyed if _comparable(v, value) and v <= value]
    if not below:
        raise BadRequest(f"no record has {key} <= {value!r}")
    greatest = max(v for v, _ in below)
    return int([r for v, r in below if v == greatest][-1]["position"])


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or type(a) is type(b)


def statistic_segments(
    storage: Storage, trial_id: str, upto: int | None = None, bodies: bool = True
) -> list[dict[str, Any]]:
    """The effective history's statistics as segments of stored chunks: ``body`` (packed
    [kind, record] pairs) with the records ``start`` to ``end`` of it, the first at
    ``position``.  The same rules as :func:`walk`, at the chunk level: a million
    statistics are read and sent without a dict per record."""
    trial = storage.get_trial(trial_id)
    history: list[dict[str, Any]] = []
    if trial["parent"] and trial["branch_point"] is not None:
        history = statistic_segments(
            storage, trial["parent"], upto=trial["branch_point"], bodies=bodies
        )
    own: dict[int, list[dict[str, Any]]] = {}
    for chunk in storage.read_chunks(trial_id, [protocol.STATISTIC], upto, bodies):
        segment = {
            "trial": trial_id,
            "execution": chunk["execution"],
            "position": chunk["position"],
            "start": 0,
            "end": chunk["count"],
            "body": chunk["body"],
        }
        own.setdefault(chunk["execution"], []).append(_cut(segment, upto))
    for view in walk(storage, trial_id, upto=upto, statistics=False)[1]:
        logged = own.get(view.number, [])
        if view.resume_point is not None:
            history = [_cut(s, view.resume_point) for s in history] + logged
        elif view.restarted:
            history = logged
        else:
            history = history + logged
    return [s for s in history if s["end"] > s["start"]]


def _cut(segment: dict[str, Any], upto: int | None) -> dict[str, Any]:
    """The segment's records at or before position ``upto``."""
    if upto is None or segment["position"] + segment["end"] - 1 <= upto:
        return segment
    return {
        **segment,
        "end": max(segment["start"], min(segment["end"], upto - segment["position"] + 1)),
    }


def end_of(storage: Storage, trial_id: str) -> int | None:
    """The position of the effective history's last record (statistic or artifact), read
    at the chunk level: branching at the end costs the same for any history's length."""
    ends = [
        s["position"] + s["end"] - 1
        for s in statistic_segments(storage, trial_id, bodies=False)[-1:]
    ]
    ends += [r["position"] for r in effective(storage, trial_id, statistics=False)[-1:]]
    return max(ends) if ends else None


def landmark(storage: Storage, trial_id: str, position: int | None) -> dict[str, Any] | None:
    """Where ``position`` of the trial's effective history is, in the user's terms: the
    keys of the record there (a statistic's, or an artifact's metadata and ``filename``),
    None where no record is.  What `kleio info` shows for a resume or branch point."""
    if position is None:
        return None
    for record in effective(storage, trial_id, upto=position, statistics=False)[::-1]:
        if record["position"] == position:
            return {**record["body"]["metadata"], "filename": record["body"]["filename"]}
    for segment in statistic_segments(storage, trial_id, upto=position, bodies=False)[::-1]:
        index = position - segment["position"]
        if segment["start"] <= index < segment["end"]:
            chunks = storage.read_chunks(
                segment["trial"], [protocol.STATISTIC], positions=[segment["position"]]
            )
            found = protocol.chunk_records(chunks[0]["body"], index, index + 1)
            return dict(found[0]) if found else None
    return None
