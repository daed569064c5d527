"""The web view's JSON API under ``/api/``: what the page reads, and what scripts may.

    GET /api/trials                     `kleio ls --json` (status, tag, where, command)
    GET /api/trials/ID                  `kleio info ID --json`
    GET /api/trials/ID/statistics       the effective history as columns; for a chart
                                        ``x``, ``keys``, ``from``, ``to``, ``points``
    GET /api/trials/ID/keys             the keys its records have
    GET /api/trials/ID/output           `kleio cat ID` as text, and its last position
    GET /api/trials/ID/live             Server-Sent Events of new output and statistics
    GET /api/trials/ID/artifacts/N      the bytes of its N-th artifact
    GET /api/diff?a=ID&b=ID             `kleio diff A B --json`
    GET /api/summary?ids=..&keys=..     last, lowest and highest value of keys, per trial

This module is also the one place where errors become HTTP replies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from kleio_cli import listing, statistics
from kleio_cli.errors import CliError
from kleio_cli.info import info_json
from kleio_cli.ui import jsonable
from kleio_cli.ui.downsample import RECORD, View, thinned
from kleio_cli.ui.live import Feed
from kleio_cli.ui.reader import History, Reader
from kleio_client import protocol
from kleio_client.errors import DaemonUnavailable, KleioError, RequestRefused
from kleio_runtime.config import Config

MAX_POINTS = 20_000  # pixel columns a chart may ask for
HTTP_STATUS = {
    protocol.E_NOT_FOUND: 404,
    protocol.E_AMBIGUOUS: 404,
    protocol.E_BAD_REQUEST: 400,
    protocol.E_STORAGE: 503,
}

Endpoint = Callable[[Request], Any]


class BadQuery(ValueError):
    """A query parameter that cannot be used."""


class Api:
    def __init__(self, config: Config, reader: Reader) -> None:
        self._config = config
        self._reader = reader

    def routes(self) -> list[Route]:
        return [
            Route("/api/trials", self._json(self.trials)),
            Route("/api/trials/{id}", self._json(self.trial)),
            Route("/api/trials/{id}/statistics", self._json(self.statistics)),
            Route("/api/trials/{id}/keys", self._json(self.keys)),
            Route("/api/trials/{id}/output", self._json(self.output)),
            Route("/api/trials/{id}/live", self._answered(self.live)),
            Route("/api/trials/{id}/artifacts/{index:int}", self._answered(self.artifact)),
            Route("/api/diff", self._json(self.diff)),
            Route("/api/summary", self._json(self.summary)),
        ]

    # -- the endpoints ------------------------------------------------------------------

    def trials(self, request: Request) -> Any:
        query = request.query_params
        wanted = statistics.conditions(query.getlist("where"))
        found = self._reader.call(
            "ls",
            status=query.getlist("status"),
            tags=query.getlist("tag"),
            where=[[c.key, c.op, c.value] for c in wanted],
            configuration=bool(query.get("options")),
        )
        command = query.get("command")
        shown = [
            t
            for t in found
            if t.get("branch_kind") != protocol.SCRATCH
            and (not command or command in " ".join(t["command"]))
        ]
        rows = [listing.json_row(t) for t in shown]
        if query.get("options"):  # the page's columns of the options that differ
            for row, trial in zip(rows, shown, strict=True):
                row["options"] = protocol.options(trial.get("configuration"))
        return rows

    def trial(self, request: Request) -> Any:
        return info_json(self._reader.call("info", id=request.path_params["id"]))

    def statistics(self, request: Request) -> Any:
        query = request.query_params
        trial = self._id(request)
        history = self._reader.history(trial, tuple(query.getlist("where")))
        keys = _listed(query.get("keys")) or history.labels
        if "x" not in query:
            return {key: history.columns.get(key) or [None] * history.rows for key in keys}
        view = View(
            query["x"],
            tuple(k for k in keys if k != query["x"]),
            _number(query.get("from")),
            _number(query.get("to")),
            _points(query),
        )
        return thinned(history.numbers, history.rows, view)

    def keys(self, request: Request) -> Any:
        history = self._reader.history(self._id(request))
        return {"keys": history.labels, "rows": history.rows, "x": [RECORD, *history.labels]}

    def output(self, request: Request) -> Any:
        page = self._reader.call("tail", id=request.path_params["id"], kind=protocol.OUTPUT)
        return {
            "text": self._reader.collapsed(page["records"]),
            "end": page["end"],
            "status": page["status"],
        }

    def live(self, request: Request) -> Response:
        feed = Feed(
            self._config, self._reader, self._id(request), _whole(request.query_params.get("after"))
        )
        return StreamingResponse(
            feed.events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    def artifact(self, request: Request) -> Response:
        found = self._reader.call("artifacts", id=request.path_params["id"])
        index = request.path_params["index"]
        if not 0 <= index < len(found):
            raise CliError(f"kleio: trial has {len(found)} artifacts; no artifact {index}")
        chosen = found[index]
        return FileResponse(chosen["path"], filename=Path(chosen["filename"]).name)

    def diff(self, request: Request) -> Any:
        query = request.query_params
        if "a" not in query or "b" not in query:
            raise BadQuery("diff needs two trials: ?a=ID&b=ID")
        return self._reader.call("diff", a=query["a"], b=query["b"])

    def summary(self, request: Request) -> Any:
        query = request.query_params
        keys = _listed(query.get("keys"))
        return {
            trial: _summary(self._reader.history(trial), keys)
            for trial in _listed(query.get("ids"))
        }

    # -- the seam: arguments in, JSON or an error reply out ------------------------------

    def _id(self, request: Request) -> str:
        return str(self._reader.call("resolve", id=request.path_params["id"]))

    def _json(self, endpoint: Endpoint) -> Callable[[Request], Response]:
        def answer(request: Request) -> Response:
            return Response(jsonable.dumps(endpoint(request)), media_type="application/json")

        return self._answered(answer)

    @staticmethod
    def _answered(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def answered(request: Request) -> Response:
            try:
                return endpoint(request)
            except (KleioError, CliError, BadQuery) as exc:
                return error_reply(exc)

        return answered


def error_reply(exc: Exception) -> Response:
    """The one mapping of Kleio's errors to HTTP: a status and ``{"error": message}``."""
    if isinstance(exc, RequestRefused):
        status = HTTP_STATUS.get(exc.code, 500)
    elif isinstance(exc, DaemonUnavailable):
        status = 503
    elif isinstance(exc, (CliError, BadQuery)):
        status = 400
    else:
        status = 500
    message = str(exc).removeprefix("kleio: ")
    return Response(
        jsonable.dumps({"error": message}), status_code=status, media_type="application/json"
    )


def _listed(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part]


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise BadQuery(f"not a finite number: {text!r}")
    return value


def _whole(text: str | None) -> int | None:
    value = _number(text)
    return None if value is None else int(value)


def _points(query: Any) -> int | None:
    points = _whole(query.get("points"))
    if points is not None and not 1 <= points <= MAX_POINTS:
        raise BadQuery(f"points must be from 1 to {MAX_POINTS}, not {points}")
    return points


def _summary(history: History, keys: list[str]) -> dict[str, Any]:
    """Per key: its last number, and its lowest and highest."""
    found: dict[str, Any] = {}
    for key in keys:
        column = history.numbers(key)
        values = None if column is None else column[np.isfinite(column)]
        if values is not None and len(values):
            found[key] = {
                "last": _plain(values[-1]),
                "min": _plain(values.min()),
                "max": _plain(values.max()),
            }
    return found


def _plain(value: Any) -> int | float:
    """A float of the history as JSON writes it: a whole number without its ".0"."""
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
