"""A real `kleio ui` for the web view's tests: the command in a subprocess on a free port,
its printed URL read from its stdout, stopped with Ctrl-C (SIGINT) at teardown."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Kleio, wait_for_line

STOP_TIMEOUT = 30.0


@dataclass
class Ui:
    """A running `kleio ui`: its base URL, its token, and its process."""

    base: str
    token: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    def get(self, path: str, token: bool = True, timeout: float = 60) -> tuple[int, bytes]:
        """GET ``path``, with the token as a Bearer header (or none): status and body."""
        request = urllib.request.Request(self.base + path)
        if token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body[:300]!r}"
        return json.loads(body)


def start_ui(kleio: Kleio, *args: str) -> Ui:
    process = kleio.popen("ui", "--no-browser", "--port", "0", *args)
    seen = wait_for_line(process.stdout, "Kleio UI: http://")
    url = next(line for line in seen.splitlines() if line.startswith("Kleio UI: "))
    url = url.split(": ", 1)[1].strip()
    base, token = url.split("/?token=")
    return Ui(base, token, process)


def stop_ui(ui: Ui) -> int:
    """Ctrl-C, as a person stops it; its exit status."""
    if ui.process.poll() is None:
        ui.process.send_signal(signal.SIGINT)
    try:
        return ui.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        ui.process.kill()
        raise AssertionError(f"kleio ui did not stop within {STOP_TIMEOUT} s of Ctrl-C") from None
    finally:
        for stream in (ui.process.stdout, ui.process.stderr):
            if stream:
                stream.close()


@pytest.fixture
def ui(kleio: Kleio) -> Iterator[Ui]:
    """`kleio ui` serving this test's journal."""
    running = start_ui(kleio)
    yield running
    stop_ui(running)
