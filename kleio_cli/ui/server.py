"""The web view's server: the page, its static files and the JSON API, behind the token,
served by uvicorn on one socket bound before the URL is printed.

Starlette and uvicorn are the ``kleio[ui]`` extra: this module is imported only by
``kleio ui``, never by ``kleio --help`` or the client library.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import webbrowser
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kleio_cli.ui.access import App, TokenRequired, new_token
from kleio_cli.ui.api import Api
from kleio_cli.ui.reader import Reader
from kleio_runtime.config import Config

STATIC = Path(__file__).resolve().parent / "static"
GRACE = 2.0  # seconds open streams get to end at Ctrl-C

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UiOptions:
    host: str = "127.0.0.1"
    port: int = 0  # a free port
    browser: bool = True


def application(config: Config, token: str) -> App:
    """The whole site for ``config``'s daemon, refusing requests without ``token``."""
    api = Api(config, Reader(config))
    routes = [
        Route("/", _index),
        *api.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return TokenRequired(Starlette(routes=routes), token)


def _index(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})


def serve(config: Config, options: UiOptions) -> None:
    """Bind, print the URL on one line of stdout, open a browser, serve until Ctrl-C."""
    # `kleio` pauses the cyclic collector for its short commands; a server runs for days
    # (the reads of long histories pause it themselves, see Reader.history).
    gc.enable()
    token = new_token()
    listening = _bound(options.host, options.port)
    app = application(config, token)
    port = listening.getsockname()[1]
    shown = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{shown}:{port}/?token={token}"
    print(f"Kleio UI: {url}", flush=True)
    if options.browser and _has_display():
        webbrowser.open(url)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=int(GRACE)
        )
    )
    try:
        server.run(sockets=[listening])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C again once it has shut down
        pass
    print("kleio: Kleio UI stopped", file=sys.stderr)


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((host, port))
    listening.listen(128)
    listening.set_inheritable(True)
    return listening


def _has_display() -> bool:
    """Whether a browser could show a window here (not over plain SSH or in a batch job)."""
    return bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin"
    )
