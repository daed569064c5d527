"""Scripts' queries: what a running script asks the daemon about its own trial.

Owns the answers to the ``query`` messages of the ingest socket, after the
batch is committed so that a script sees its own records: ``statistics`` (the
stored chunks of the effective history, which the script unpacks and
filters), ``chunks`` (their bodies, a page at a time), ``load_artifact`` and
``artifacts`` (from the effective history the script sees; a load is
journaled, since the execution's resume point is derived from those records),
``signal`` (a process of the execution received SIGINT or SIGTERM) and
``imported`` (the project's files a process of the execution ran, journaled: what
a resume compares the code by).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from kleio_client import protocol
from kleio_client.protocol import collection_paused
from kleiod import columns, history
from kleiod.batch import Send
from kleiod.errors import BadRequest
from kleiod.ingest_message import counter
from kleiod.storage.base import Chunk, Storage


class ScriptQueries:
    """Answers a script's queries from the effective history it sees."""

    def __init__(self, storage: Storage, send: Send, commit: Callable[[], None]) -> None:
        self._storage = storage
        self._send = send
        self._commit = commit

    def answer(self, identity: bytes, message: dict[str, Any]) -> None:
        """A script asks about its trial: answered from the effective history it sees."""
        self._commit()
        req = counter(message["req"], "req")
        trial, execution = str(message["trial"]), counter(message["execution"], "execution")
        args = dict(message["args"])
        name = message["name"]
        if name == "statistics":  # stored chunks: the script unpacks and filters them
            with collection_paused():
                segments = history.statistic_segments(
                    self._storage, trial, bodies=bool(args.get("bodies", True))
                )
            self._send(identity, protocol.answer(req, {"segments": segments}))
            return
        if name == "chunks":  # their bodies, a page at a time
            bodies = columns.bodies(self._storage, list(args["segments"]))
            self._send(identity, protocol.answer(req, bodies))
            return
        if name == protocol.SIGNAL:
            self._journal_signal(trial, execution, str(message["producer"]), req, args)
            self._send(identity, protocol.answer(req, None))
            return
        if name == protocol.IMPORTED:
            body = {"files": imported_files(args.get("files"))}
            self._journal(trial, execution, str(message["producer"]), req, name, body)
            self._send(identity, protocol.answer(req, None))
            return
        loading = execution if name == "load_artifact" else None
        with collection_paused():
            seen = history.effective(self._storage, trial, loading=loading, statistics=False)
        if name == "load_artifact":
            found = history.artifacts(seen, str(args["filename"]), dict(args["metadata"]))
            result: Any = None
            if found:
                self._note_load(trial, execution, str(message["producer"]), req, found[-1])
                result = self._artifact(found[-1])
        elif name == "artifacts":
            filename = args.get("filename")
            result = [
                self._artifact(r)
                for r in history.artifacts(
                    seen, None if filename is None else str(filename), dict(args["metadata"])
                )
            ]
        else:
            raise BadRequest(f"unknown query {name!r}")
        self._send(identity, protocol.answer(req, result))

    def _artifact(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            **record["body"],
            "position": record["position"],
            "trial": record["trial"],
            "execution": record["execution"],
            "path": self._storage.blob_path(record["body"]["sha256"]),
        }

    def _note_load(
        self, trial: str, execution: int, producer: str, req: int, found: dict[str, Any]
    ) -> None:
        """Journal the load: the execution's resume point is derived from these records."""
        body = {
            "filename": found["body"]["filename"],
            "sha256": found["body"]["sha256"],
            "artifact_position": found["position"],
        }
        self._journal(trial, execution, producer, req, protocol.LOAD, body)

    def _journal_signal(
        self, trial: str, execution: int, producer: str, req: int, args: dict[str, Any]
    ) -> None:
        """A process of the execution received SIGINT or SIGTERM (see protocol.SIGNAL)."""
        name = str(args["signal"])
        if name not in ("SIGINT", "SIGTERM"):
            raise BadRequest(f"a signal note names SIGINT or SIGTERM, not {name[:20]!r}")
        body = {"signal": name, "pid": counter(args["pid"], "pid")}
        self._journal(trial, execution, producer, req, protocol.SIGNAL, body)

    def _journal(
        self, trial: str, execution: int, producer: str, req: int, kind: str, body: dict[str, Any]
    ) -> None:
        """One record of ``kind``, keyed by the query's req under ``<producer>/<kind>``."""
        chunk = Chunk(
            trial,
            execution,
            f"{producer}/{kind}",
            req,
            1,
            kind,
            msgpack.packb([[kind, body]], use_bin_type=True),
        )
        self._storage.append_chunks([chunk])


def imported_files(files: Any) -> dict[str, str]:
    """A report's files, checked: at most ``MAX_IMPORTED_FILES`` paths relative to the
    project root (none absolute, none climbing out of it), each with a sha256."""
    if not isinstance(files, dict) or len(files) > protocol.MAX_IMPORTED_FILES:
        raise BadRequest(
            f"imported files are a map of at most {protocol.MAX_IMPORTED_FILES} paths to sha256"
        )
    for path, digest in files.items():
        if (
            not isinstance(path, str)
            or not path
            or path.startswith("/")
            or ".." in path.split("/")
            or not isinstance(digest, str)
            or len(digest) != 64
            or digest.strip("0123456789abcdef")
        ):
            raise BadRequest(f"not a relative path and its sha256: {path!r:.80} {digest!r:.80}")
    return files
