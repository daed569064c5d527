"""``kleio_logger``: what a training script calls.

Under ``kleio`` (the supervisor sets ``KLEIO_TRIAL_ID``, ``KLEIO_EXECUTION``
and ``KLEIO_INGEST_ENDPOINT``) records travel to the daemon over ZeroMQ ipc
without blocking and without any database call in this process.  Without
kleio the script runs unchanged: statistics are printed on stderr, one line
each, artifacts are not stored and ``load_artifact`` returns None.  Under kleio
the process also reports the project's files it imported (``imported.py``), at
its first record and at exit: the code the trial ran, compared on a resume.
"""

from __future__ import annotations

import atexit
import io
import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

import msgpack

from kleio_client import protocol
from kleio_client import segments as stored
from kleio_client.artifact import Artifact
from kleio_client.channel import QUEUE_RECORDS, Channel
from kleio_client.imported import ImportedFiles, batches
from kleio_client.signals import SignalWatch
from kleio_client.values import MAX_STRING, normalize_record, not_text

__all__ = ["Logger", "kleio_logger"]

_PLAIN = frozenset({float, int, str, bool, type(None)})


def _rank(env: Any) -> int | None:
    """This process's rank among several: ``RANK`` (torchrun), else ``SLURM_PROCID``."""
    for name in ("RANK", "SLURM_PROCID"):
        value = str(env.get(name, "")).strip()
        if value.isdigit():
            return int(value)
    return None


def _misuse(args: tuple[Any, ...]) -> TypeError:
    if args:
        return TypeError(
            "log_statistic takes keyword arguments only, e.g. "
            "log_statistic(epoch=3, loss=0.25): each name becomes a key of the "
            "record"
        )
    return TypeError("log_statistic needs at least one key=value")


class Logger:
    """The journal of the current trial, as seen from inside the script."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.trial_id: str | None = env.get(protocol.ENV_TRIAL) or None
        self.execution: int | None = int(env.get(protocol.ENV_EXECUTION, "0")) or None
        self._endpoint = env.get(protocol.ENV_INGEST) or None
        self._settings = protocol.ClientSettings.of(env)
        self._channel: Channel | None = None
        self._imported: ImportedFiles | None = None
        self._said_no_artifacts = False
        # Held across a fork, so that a child never sees a channel half made.
        self._start_lock = threading.Lock()
        os.register_at_fork(
            before=self._start_lock.acquire,
            after_in_parent=self._start_lock.release,
            after_in_child=self._start_lock.release,
        )
        self._log_statistic: Callable[..., None] = self.log_statistic
        if self.trial_id is not None and self._endpoint is not None:
            self._log_statistic = self.log_statistic = (  # type: ignore[method-assign]
                self._queue_statistics()
            )
        # One process of several logging into the trial (torchrun, srun): its records say
        # which, as the key ``rank`` (unless the script sets it), so `--where rank=0` works.
        self.rank = _rank(env)
        if self.rank is not None:
            self.log_statistic = self._log_statistic_of_rank  # type: ignore[method-assign]

    def _log_statistic_of_rank(self, *args: Any, **record: Any) -> None:
        if args or not record:
            raise _misuse(args)
        record.setdefault("rank", self.rank)
        self._log_statistic(**record)

    # -- statistics -------------------------------------------------------------

    def log_statistic(self, *args: Any, **record: Any) -> None:
        """Store one record of statistics, e.g. ``log_statistic(epoch=3, loss=0.25)``.

        Values are checked and converted, and refused here when they cannot be stored.
        Outside kleio the record is printed; under kleio this method is replaced by the
        hot path (:meth:`_queue_statistics`)."""
        if args or not record:
            raise _misuse(args)
        if not _PLAIN.issuperset(map(type, record.values())):
            normalize_record(record)
        print("[kleio] " + " ".join(f"{k}={v}" for k, v in record.items()), file=sys.stderr)

    def _queue_statistics(self) -> Callable[..., None]:
        """``log_statistic`` under kleio, with what it uses bound once: plain scalars are
        packed here (a reused packer) and queued as bytes; anything else is checked and
        converted first, and refused here when it cannot be stored."""
        pack = msgpack.Packer(use_bin_type=True).pack
        plain, limit, queue_bound = _PLAIN, MAX_STRING, QUEUE_RECORDS

        def log_statistic(*args: Any, **record: Any) -> None:
            if args or not record:
                raise _misuse(args)
            for value in record.values():  # a loop: faster than set operations on types
                if type(value) not in plain:
                    normalize_record(record)
                    break
            channel = self._channel or self._open()
            try:
                body = pack(record)
            except OverflowError:  # an int beyond 64 bits: the clear error
                normalize_record(record)
                raise
            except UnicodeEncodeError as exc:  # lone surrogates, from a mis-decoded file name
                raise not_text(record, exc) from None
            if len(body) > limit:  # a long string, perhaps too long
                normalize_record(record)
                channel.record(protocol.STATISTIC, record)
                return
            channel.append(body)
            if len(channel.queued) > queue_bound:
                channel.catch_up()

        log_statistic.__doc__ = Logger.log_statistic.__doc__
        return log_statistic

    # -- artifacts ----------------------------------------------------------------

    def log_artifact(self, filename: str, fileobj: IO[bytes] | bytes, **metadata: Any) -> None:
        """Store ``fileobj``'s bytes (once per content) under ``filename`` with ``metadata``."""
        stored = self._store_artifact(filename, fileobj, metadata)
        if stored is not None:
            self._journal_artifact(stored)

    def _store_artifact(
        self, filename: str, fileobj: IO[bytes] | bytes, metadata: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``log_artifact``'s first half: the bytes stored now, the record's body returned
        for :meth:`_journal_artifact` to journal later (a framework's checkpoint, placed
        after the statistics it covers); None outside kleio."""
        if not isinstance(filename, str) or not filename:
            raise TypeError("log_artifact needs a non-empty str filename")
        normalize_record(metadata)
        channel = self._channel or self._start()
        if channel is None:
            if not self._said_no_artifacts:
                self._said_no_artifacts = True
                print("[kleio] not running under kleio: artifacts are not stored", file=sys.stderr)
            return None
        if isinstance(fileobj, (bytes, bytearray, memoryview)):
            fileobj = io.BytesIO(bytes(fileobj))
        sha256, size = channel.upload(cast(BinaryIO, fileobj))
        return {"filename": filename, "sha256": sha256, "size": size, "metadata": metadata}

    def _journal_artifact(self, body: dict[str, Any]) -> None:
        """``log_artifact``'s second half: the record of bytes :meth:`_store_artifact` stored."""
        self._open().record(protocol.ARTIFACT, body)

    def load_artifact(self, filename: str, **metadata: Any) -> Artifact | None:
        """The latest artifact named ``filename`` whose metadata match, or None.

        Searches the effective history (inherited from a branch's parent included);
        the artifact's position becomes this execution's resume point.
        """
        normalize_record(metadata)
        channel = self._channel or self._start()
        if channel is None:
            return None
        found = channel.query("load_artifact", {"filename": filename, "metadata": metadata})
        return None if found is None else _artifact(found)

    def artifacts(self, filename: str | None = None, **metadata: Any) -> list[Artifact]:
        """The matching artifacts of the effective history, oldest first (loads nothing)."""
        normalize_record(metadata)
        channel = self._channel or self._start()
        if channel is None:
            return []
        found = channel.query("artifacts", {"filename": filename, "metadata": metadata})
        return [_artifact(item) for item in found]

    # -- resources and past statistics -------------------------------------------

    def log_resource(self, path: str | os.PathLike[str], **metadata: Any) -> None:
        """Record an input file or directory by content hash (cached by path, size, mtime).

        On a resume, a changed resource counts as a changed environment.
        """
        from kleio_client import resource  # here: its hashlib loads OpenSSL (3.5 MiB)

        normalize_record(metadata)
        channel = self._channel or self._start()
        if channel is None:
            return
        channel.record(protocol.RESOURCE, {**resource.describe(path), "metadata": metadata})

    def statistics(self, **where: Any) -> list[dict[str, Any]]:
        """The effective history's statistics matching ``where``, oldest first."""
        normalize_record(where)
        channel = self._channel or self._start()
        if channel is None:
            return []
        segments = channel.query("statistics", {"where": where, "bodies": False})["segments"]
        for _, page in stored.pages(segments):  # no query holds the daemon long
            stored.attach(page, channel.query("chunks", {"segments": stored.described(page)}))
        records = stored.unpacked(segments)
        if not where:
            return records
        return [r for r in records if all(r.get(k) == v for k, v in where.items())]

    # -- lifetime -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything logged so far is committed (done at exit too)."""
        if self._channel is not None:
            self._channel.flush(timeout)

    def _close(self) -> None:
        if self._channel is not None:
            self._report_imported()  # what was imported since the first record
            self._channel.close()

    def _report_imported(self) -> None:
        """Report the project's files imported and not reported yet (none outside git)."""
        root = self._settings.project_root
        if root is None or self._channel is None:
            return
        if self._imported is None:
            self._imported = ImportedFiles(root)
        new = self._imported.unreported()
        for files in batches(new, protocol.MAX_IMPORTED_FILES):
            self._channel.tell(protocol.IMPORTED, {"files": files})

    def _open(self) -> Channel:
        channel = self._start()
        assert channel is not None, "the hot path is installed under kleio only"
        return channel

    def _start(self) -> Channel | None:
        if self.trial_id is None or self._endpoint is None:
            return None
        started = False
        with self._start_lock:
            if self._channel is None:
                self._channel = Channel(
                    self._endpoint, self.trial_id, self.execution or 0, self._settings
                )
                atexit.register(self._close)
                self._channel.signals = SignalWatch(self.flush)
                self._channel.signals.arm(self._channel.wake_fd)
                started = True
        if started:  # the process's first record: the code it runs is known by now
            self._report_imported()
        return self._channel


def _artifact(found: dict[str, Any]) -> Artifact:
    return Artifact(
        filename=found["filename"],
        metadata=found["metadata"],
        sha256=found["sha256"],
        size=found["size"],
        path=found["path"],
        position=found["position"],
    )


kleio_logger = Logger()
