"""The journal from a notebook or an analysis script: find trials, read their statistics
and artifacts, walk their branch trees.  Talks to the running daemon (``kleio daemon
start``); never writes.

    from kleio_client.journal import Journal

    journal = Journal()
    runs = journal.trials(status="completed", lr__gt=0.01)
    best = min(runs, key=lambda t: t.statistics(split="val", sort="loss")[0]["loss"])
    frame = best.dataframe(keys=["epoch", "loss"])   # pandas, when installed

One filter syntax everywhere: ``key=value`` is equality, ``key__op=value`` compares with
``op`` one of ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``in`` (a list of values) and
``contains`` (a substring, or an item of a list).  A record or a trial without the key
matches only ``ne``.
"""

from __future__ import annotations

import operator
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from kleio_client import protocol, segments
from kleio_client.control import ControlClient
from kleio_client.errors import DaemonUnavailable
from kleio_client.protocol import ABSENT, conditions, sort_rank
from kleio_client.values import orders_by_itself

options = protocol.options  # the name scripts import


class Journal:
    """The trials of the daemon serving this user (or ``runtime_dir``)."""

    def __init__(self, runtime_dir: str | None = None, timeout: float = 60.0) -> None:
        directory = runtime_dir or protocol.default_runtime_dir()
        self._client = ControlClient(
            protocol.Endpoints.in_directory(directory).control, timeout=timeout
        )

    def call(self, cmd: str, **args: Any) -> Any:
        return self._answered(self._client.call, cmd, **args)

    def stored(self, trial_id: str) -> list[dict[str, Any]]:
        """The trial's segments of stored statistics with their bodies, read in pages."""
        return self._answered(segments.read, self._client, trial_id)

    @staticmethod
    def _answered(ask: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return ask(*args, **kwargs)
        except DaemonUnavailable:
            raise DaemonUnavailable(
                "kleio: no daemon answers; start one with `kleio daemon start`"
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trial(self, trial_id: str) -> Trial:
        """One trial, by id or unique prefix."""
        return Trial(self, self.call("info", id=trial_id))

    def trials(
        self,
        *,
        id: str | None = None,
        status: str | Sequence[str] | None = None,
        tags: Sequence[str] = (),
        command: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        **configuration: Any,
    ) -> list[Trial]:
        """Trials, oldest first, by id prefix, status(es), tags (all of them), a substring
        of the command, creation time (seconds since the epoch), and configuration values
        (``lr=0.1``, ``lr__gt=0.01``: options of the command line, without dashes, ``-`` as
        ``_``; ``arguments``, the positional ones).  The daemon judges status, tags and
        options in one read of the journal; each trial's :attr:`Trial.info` is asked of it
        only when read."""
        statuses = [status] if isinstance(status, str) else list(status or ())
        wanted = conditions(configuration)
        # ``arguments`` is this API's name for the positional ones, not an option's: judged
        # here, on the configuration listed
        positional = [c for c in wanted if c.key == "arguments"]
        listed = self.call(
            "ls",
            status=statuses,
            tags=list(tags),
            configuration=True,
            where=[[c.key, c.op, _sendable(c.value)] for c in wanted if c.key != "arguments"],
        )
        found = []
        for row in listed:
            if (
                row.get("branch_kind") == "scratch"
                or (id and not row["id"].startswith(id.lower()))
                or (command and command not in " ".join(row["command"]))
                or (created_after is not None and row["created"] < created_after)
                or (created_before is not None and row["created"] > created_before)
            ):
                continue
            trial = Trial(self, row, listed=True)
            if all(c.holds(trial.configuration) for c in positional):
                found.append(trial)
        return found


def _sendable(value: Any) -> Any:
    """A value to compare with, as the daemon can be sent it: a set or a tuple (of ``in``)
    as a list."""
    return list(value) if isinstance(value, (set, frozenset, tuple)) else value


class Trial:
    """A trial as ``kleio info`` shows it, with its statistics and artifacts on demand.

    One that :meth:`Journal.trials` found is what the daemon listed (id, status, command,
    tags, parent, configuration) until :attr:`info` is first read."""

    def __init__(self, journal: Journal, info: dict[str, Any], *, listed: bool = False) -> None:
        self.journal = journal
        self._known = info
        self._listed = listed  # ``info`` is a row of ``ls``, not yet ``kleio info``'s

    @property
    def info(self) -> dict[str, Any]:
        """The trial as the daemon's ``info`` gives it, what ``kleio info`` shows (asked
        of the daemon when first read, for a trial that :meth:`Journal.trials` found)."""
        if self._listed:
            self._known = self.journal.call("info", id=self.id)
            self._listed = False
        return self._known

    @property
    def id(self) -> str:
        return str(self._known["id"])

    @property
    def status(self) -> str:
        return str(self._known["status"])

    @property
    def command(self) -> list[str]:
        return list(self._known["command"])

    @property
    def tags(self) -> list[str]:
        return list(self._known.get("tags") or [])

    @property
    def configuration(self) -> dict[str, Any]:
        """The command line's options, by name without dashes (``--batch-size`` is
        ``batch_size``), and ``arguments``, its positional arguments."""
        captured = self._known.get("configuration") or {}
        return {**options(captured), "arguments": list(captured.get("positional") or [])}

    def __repr__(self) -> str:
        return f"Trial({self.id[:12]}, {self.status}, {' '.join(self.command)!r})"

    # -- statistics -----------------------------------------------------------------

    def statistics(
        self,
        *,
        keys: Sequence[str] | None = None,
        sort: str | Sequence[str] | None = None,
        descending: bool = False,
        **where: Any,
    ) -> list[dict[str, Any]]:
        """The effective history's statistics (inherited ones included), oldest first:
        filtered by ``where`` (``epoch__ge=10``, ``split="val"``), sorted by one key or
        several (numbers, then strings; records without the key last), ``keys`` only."""
        with protocol.collection_paused():
            stored = self.journal.stored(self.id)
            return self._shaped(segments.unpacked(stored), keys, sort, descending, where)

    def every_execution(self, **where: Any) -> list[dict[str, Any]]:
        """Every execution's statistics, superseded ones too, oldest first: dicts with the
        ``trial`` and ``execution`` that logged the ``record``, and whether a resume
        ``superseded`` it."""
        rows = self.journal.call("stats", id=self.id, all_executions=True)
        wanted = conditions(where)
        return [
            {k: row[k] for k in ("trial", "execution", "superseded", "record")}
            for row in rows
            if all(c.holds(row["record"]) for c in wanted)
        ]

    @staticmethod
    def _shaped(
        records: list[dict[str, Any]],
        keys: Sequence[str] | None,
        sort: str | Sequence[str] | None,
        descending: bool,
        where: dict[str, Any],
    ) -> list[dict[str, Any]]:
        wanted = conditions(where)
        if wanted:
            records = [r for r in records if all(c.holds(r) for c in wanted)]
        if sort:
            order = [sort] if isinstance(sort, str) else list(sort)
            keyed = [r for r in records if order[0] in r]
            _sort(keyed, order, descending)
            records = keyed + [r for r in records if order[0] not in r]  # keyless: last
        if keys:
            records = [{k: r.get(k) for k in keys} for r in records]
        return records

    def dataframe(self, **options: Any) -> Any:
        """:meth:`statistics` as a pandas DataFrame (pandas is imported only here)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Trial.dataframe needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.statistics(**options))

    # -- artifacts --------------------------------------------------------------------

    def artifacts(self, filename: str | None = None, **metadata: Any) -> list[StoredArtifact]:
        """The effective history's artifacts, oldest first, by file name and metadata."""
        found = self.journal.call("artifacts", id=self.id, filename=filename)
        wanted = conditions(metadata)
        return [StoredArtifact(a) for a in found if all(c.holds(a["metadata"]) for c in wanted)]

    # -- branch trees ---------------------------------------------------------------------

    @property
    def parent(self) -> Trial | None:
        parent = self._known.get("parent")
        return None if parent is None else self.journal.trial(parent)

    def ancestors(self) -> list[Trial]:
        """Parent, grandparent... up to the root."""
        found = []
        current = self.parent
        while current is not None:
            found.append(current)
            current = current.parent
        return found

    def children(self) -> list[Trial]:
        return [
            self.journal.trial(t["id"])
            for t in self.journal.call("ls")
            if t["parent"] == self.id and t.get("branch_kind") != "scratch"
        ]


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact of the journal: its metadata, and its bytes on this machine."""

    info: dict[str, Any]

    @property
    def filename(self) -> str:
        return str(self.info["filename"])

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.info["metadata"])

    @property
    def sha256(self) -> str:
        return str(self.info["sha256"])

    def open(self) -> IO[bytes]:
        return open(self.info["path"], "rb")

    def download(self, path: str) -> str:
        """Copy the bytes to ``path``; return it."""
        shutil.copyfile(self.info["path"], path)
        return path


def _sort(records: list[dict[str, Any]], order: list[str], descending: bool) -> None:
    """Sort records by the keys of ``order`` as ``sort_rank`` says (stable).  When every
    record has every key, each holding only numbers (no NaN) or only strings, by the values
    themselves at C speed: one stable pass per key, the last key first."""
    if all(map(orders_by_itself, ([r.get(k, ABSENT) for r in records] for k in order))):
        for key in reversed(order):
            records.sort(key=operator.itemgetter(key), reverse=descending)
        return
    records.sort(
        key=lambda record: tuple(sort_rank(record.get(k, ABSENT)) for k in order),
        reverse=descending,
    )
