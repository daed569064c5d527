"""One request to the daemon of this command's configuration, on a connection of its
own: what a command that asks the journal one question needs."""

from __future__ import annotations

from typing import Any

from kleio_cli.connection import connect
from kleio_runtime.config import resolve


def call(cmd: str, **args: Any) -> Any:
    with connect(resolve()) as client:
        return client.call(cmd, **args)
