"""The journal as the CLI reads it: trials, effective histories, artifacts, differences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kleio_client import protocol
from kleio_client.protocol import ABSENT, COMPARISONS, Condition, collection_paused, sort_rank
from kleiod import columns, history, reservation
from kleiod.diff import compare
from kleiod.errors import BadRequest, TrialNotFound
from kleiod.live import FOLLOWED_KINDS, Live
from kleiod.storage.base import Storage


class Queries:
    """Read-only verbs; each first commits what ingest holds, so a reader sees it."""

    def __init__(self, storage: Storage, commit: Callable[[], None], live: Live) -> None:
        self._storage = storage
        self._commit = commit
        self._live = live

    def table(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        verbs = {
            "resolve": self.resolve,
            "ls": self.ls,
            "trial": self.trial,
            "info": self.info,
            "stats": self.stats,
            "cat": self.cat,
            "diff": self.diff,
            "artifacts": self.artifacts,
            "branch_point": self.branch_point,
            "resources": self.resources,
            "imported": self.imported,
            "tail": self.tail,
            "columns": self.columns,
            "chunks": self.chunks,
        }
        return {name: self._committed(verb) for name, verb in verbs.items()}

    def _committed(self, verb: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def run(args: dict[str, Any]) -> Any:
            self._commit()
            with collection_paused():
                return verb(args)

        return run

    def _id(self, args: dict[str, Any]) -> str:
        return self._storage.resolve_id(str(args["id"]))

    def resolve(self, args: dict[str, Any]) -> str:
        return self._storage.resolve_id(str(args["id"]))

    def ls(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The trials, oldest first; only those with one of the ``status`` given, all the
        ``tags`` given and whose command-line options match ``where`` (``[key, op,
        value]`` triples: ``--batch-size 8`` is ``batch_size``, as its latest capture has
        it), all judged over one read of the journal.  With ``configuration``, each with
        the configuration it was captured with (as ``info`` gives it)."""
        statuses, tags = _strings(args, "status"), set(_strings(args, "tags"))
        where = _where(args.get("where"))
        shown = bool(args.get("configuration"))
        trials = self._storage.list_trials(configurations=shown or bool(where))
        kept = [
            t
            for t in trials
            if (not statuses or t["status"] in statuses)
            and tags <= set(t["tags"])
            and _configured(t, where)
        ]
        if not shown:
            for trial in kept:
                trial.pop("configuration", None)
        return kept

    def trial(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._storage.get_trial(self._storage.resolve_id(str(args["id"])))

    def info(self, args: dict[str, Any]) -> dict[str, Any]:
        trial = self._storage.get_trial(self._id(args))
        # Statistics are counted from their segments: a million of them are not read.
        walked, views = history.walk(self._storage, trial["id"], statistics=False)
        segments = history.statistic_segments(self._storage, trial["id"], bodies=False)
        trial["statistics"] = sum(s["end"] - s["start"] for s in segments)
        trial["inherited_records"] = sum(
            s["end"] - s["start"] for s in segments if s["trial"] != trial["id"]
        ) + sum(1 for r in walked if r["trial"] != trial["id"])
        trial["artifacts"] = [_artifact(r) for r in walked if r["kind"] == protocol.ARTIFACT]
        shaped = {view.number: view for view in views}
        for execution in trial["executions"]:
            view = shaped.get(execution["number"])
            execution["resume_point"] = view.resume_point if view else None
            execution["restarted"] = view.restarted if view else False
            execution["resumed_after"] = history.landmark(
                self._storage, trial["id"], execution["resume_point"]
            )
        resources = {}  # the inputs it logged: the latest record of each path
        for record in self._storage.read_records(trial["id"], [protocol.RESOURCE]):
            resources[record["body"]["path"]] = {**record["body"], "execution": record["execution"]}
        trial["resources"] = list(resources.values())
        if trial["parent"]:
            trial["branched_after"] = history.landmark(
                self._storage, trial["parent"], trial["branch_point"]
            )
        capture = self._storage.capture(trial["id"]) or {}
        for part in ("configuration", "code", "environment"):
            trial[part] = capture.get(part)
        ran = reservation.imported_files(self._storage, trial["id"])
        if trial["code"] is not None and ran is not None:  # the files its executions ran
            trial["code"] = {**trial["code"], "imported": ran}
        return trial

    def stats(self, args: dict[str, Any]) -> Any:
        """The effective history's statistics; with ``all_executions``, superseded ones too.
        With ``segments``, the records as stored chunks for the caller to unpack (fast)."""
        if args.get("segments") and not args.get("all_executions"):
            return history.statistic_segments(
                self._storage, self._id(args), bodies=bool(args.get("bodies", True))
            )
        trial_id = self._id(args)
        walked = history.effective(self._storage, trial_id)
        records = [r for r in walked if r["kind"] == protocol.STATISTIC]
        if args.get("all_executions"):
            kept = {r["position"] for r in records}
            own = self._storage.read_records(trial_id, [protocol.STATISTIC])
            for record in own:
                record["trial"] = trial_id
            records = sorted(
                [r for r in records if r["trial"] != trial_id] + own, key=lambda r: r["position"]
            )
            rows = [_row(r, superseded=r["position"] not in kept) for r in records]
        else:
            rows = [_row(r) for r in records]
        sort = args.get("sort")
        if sort:
            if rows and not any(sort in row["record"] for row in rows):
                keys = sorted({k for row in rows for k in row["record"]})
                raise BadRequest(f"no record has the key {sort!r}; keys: {', '.join(keys)}")
            key = str(sort)
            rows.sort(key=lambda row: sort_rank(row["record"].get(key, ABSENT)))
        return rows

    def columns(self, args: dict[str, Any]) -> dict[str, Any]:
        """A page of ``segments`` (as ``stats`` gave them, without bodies) as columns, only
        the records matching ``where`` (``[key, op, value]`` triples)."""
        where = _where(args.get("where"))
        return columns.page(self._storage, list(args["segments"]), where)

    def chunks(self, args: dict[str, Any]) -> list[bytes]:
        """The stored bodies of a page of ``segments`` (as ``stats`` gave them), in order."""
        return columns.bodies(self._storage, list(args["segments"]))

    def artifacts(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The effective history's artifacts matching filename and metadata, oldest first."""
        walked = history.effective(self._storage, self._id(args), statistics=False)
        filename = args.get("filename")
        found = history.artifacts(
            walked, None if filename is None else str(filename), dict(args.get("metadata") or {})
        )
        return [
            {**_artifact(r), "path": self._storage.blob_path(r["body"]["sha256"])} for r in found
        ]

    def resources(self, args: dict[str, Any]) -> list[str]:
        """The paths of the resources logged by the trials a run is compared with (see
        ``_compared``): what the CLI hashes anew before a resume."""
        return sorted(
            {
                path
                for i in self._compared(args)
                for path in reservation.logged_resources(self._storage, i)
            }
        )

    def imported(self, args: dict[str, Any]) -> list[str]:
        """The files (relative to the project root) that the trials a run is compared with
        ran (see ``_compared``): what the CLI hashes anew before a resume."""
        return sorted(
            {
                path
                for i in self._compared(args)
                for path in reservation.imported_files(self._storage, i) or {}
            }
        )

    def _compared(self, args: dict[str, Any]) -> list[str]:
        """The trials a run of ``id`` is compared with: a command's trial and its
        change-branches, or that one trial (``exact``); and a new ``kleio branch``
        child's ``parent``."""
        trial_id = str(args["id"])
        ids = (
            [trial_id]
            if args.get("exact")
            else [c["id"] for c in self._storage.candidates(trial_id)]
        )
        if args.get("parent"):
            ids.append(str(args["parent"]))
        return ids

    def branch_point(self, args: dict[str, Any]) -> dict[str, Any]:
        trial_id = self._id(args)
        key = args.get("key")
        if key is None:  # the end of the history: found without reading the records
            point = history.end_of(self._storage, trial_id)
        else:
            walked = history.effective(self._storage, trial_id)
            point = history.branch_point(walked, str(key), args.get("value"))
        if point is None:
            point = self._storage.get_trial(trial_id)["branch_point"]
        return {
            "id": trial_id,
            "branch_point": point,
            "after": history.landmark(self._storage, trial_id, point),
        }

    def diff(self, args: dict[str, Any]) -> dict[str, Any]:
        """Two executions' captures compared; ``here``: what the CLI would run now, as b."""
        sides = [self._execution_capture(str(args["a"]))]
        here = args.get("here")
        if isinstance(here, dict):
            sides.append(("here", here))
        else:
            sides.append(self._execution_capture(str(args["b"])))
        labels = (sides[0][0], sides[1][0])
        return {"a": labels[0], "b": labels[1], **compare(sides[0][1], sides[1][1], labels)}

    def _execution_capture(self, name: str) -> tuple[str, dict[str, Any]]:
        """``ID`` (its latest execution) or ``ID:N`` (its execution N), and its capture
        with the files they ran (the trial's executions, or execution N)."""
        prefix, _, number = name.partition(":")
        trial_id = self._storage.resolve_id(prefix)
        if number and not number.isdigit():
            raise BadRequest(f"{name!r}: an execution is named ID:N, N a number")
        capture = self._storage.capture(trial_id, int(number) if number else None)
        if capture is None:
            raise TrialNotFound(f"{name}: no captured execution; see `kleio info {prefix}`")
        ran = reservation.imported_files(self._storage, trial_id, int(number) if number else None)
        capture = {**capture, "imported": ran}
        return (f"{trial_id[:12]}:{number}" if number else trial_id[:12]), capture

    def cat(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        trial_id = self._storage.resolve_id(str(args["id"]))
        return [
            {"execution": r["execution"], "stream": r["body"]["stream"], "data": r["body"]["data"]}
            for r in self._storage.read_records(trial_id, [protocol.OUTPUT])
        ]

    def tail(self, args: dict[str, Any]) -> dict[str, Any]:
        """A trial's own output (or statistics) past position ``after``, or its ``last``
        lines (rows), with the live chunks published so far: what `kleio tail` follows."""
        trial_id = self._id(args)
        kind = str(args.get("kind") or protocol.OUTPUT)
        if kind not in FOLLOWED_KINDS:
            raise BadRequest(f"cannot follow {kind!r} records; only output and statistic")
        after = args.get("after")
        records = self._storage.read_records(
            trial_id, [kind], None if after is None else int(after)
        )
        end = records[-1]["position"] if records else after
        last = args.get("last")
        if last is not None:
            records = (
                _last_lines(records, int(last))
                if kind == protocol.OUTPUT
                else records[max(0, len(records) - int(last)) :]
            )
        return {
            "id": trial_id,
            "status": self._storage.get_trial(trial_id)["status"],
            "records": [
                {"position": r["position"], "execution": r["execution"], "body": r["body"]}
                for r in records
            ],
            "end": end,
            "published": self._live.published(trial_id, kind),
            "boot": self._live.boot,
        }


def _last_lines(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The output records that hold the last ``count`` lines, the first one cut."""
    seen = 0
    final = True  # the newline that ends the output ends its last line; it is not a break
    for index in range(len(records) - 1, -1, -1):
        data: bytes = records[index]["body"]["data"]
        end = len(data)
        if final and data:
            final = False
            end -= data.endswith(b"\n")
        while count > 0:
            cut = data.rfind(b"\n", 0, end)
            if cut < 0:
                break
            seen += 1
            if seen == count:
                head = {
                    **records[index],
                    "body": {**records[index]["body"], "data": data[cut + 1 :]},
                }
                return [head, *records[index + 1 :]]
            end = cut
        if count <= 0:
            return []
    return records


def _row(record: dict[str, Any], superseded: bool = False) -> dict[str, Any]:
    return {
        "position": record["position"],
        "trial": record["trial"],
        "execution": record["execution"],
        "superseded": superseded,
        "record": record["body"],
    }


def _artifact(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **record["body"],
        "trial": record["trial"],
        "execution": record["execution"],
        "position": record["position"],
    }


def _strings(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(f"{name} takes a list of strings")
    return value


def _where(value: Any) -> list[Condition]:
    """``where`` as sent: ``[key, op, value]`` triples, the key a string."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(t, list) and len(t) == 3 and isinstance(t[0], str) for t in value
    ):
        raise BadRequest("where takes a list of [key, op, value] triples, each key a string")
    return [_condition(triple) for triple in value]


def _configured(trial: dict[str, Any], where: list[Condition]) -> bool:
    """Whether the trial's command-line options match, named as ``protocol.options``
    names them."""
    if not where:
        return True
    options = protocol.options(trial.get("configuration"))
    return all(c.holds(options) for c in where)


def _condition(triple: list[Any]) -> Condition:
    key, op, value = triple
    if not isinstance(op, str) or op not in COMPARISONS:
        raise BadRequest(
            f"unknown comparison {str(op)[:20]!r}; use one of {', '.join(COMPARISONS)}"
        )
    return Condition(str(key), op, value)
