"""The client stays light and its public names are pinned."""

from __future__ import annotations

import json
import subprocess
import sys

import kleio_client


def test_public_names():
    assert sorted(kleio_client.__all__) == [
        "Artifact",
        "DaemonUnavailable",
        "KleioError",
        "Logger",
        "RequestRefused",
        "__version__",
        "kleio_logger",
    ]
    from kleio_client.logger import kleio_logger

    assert kleio_logger is kleio_client.kleio_logger


def test_importing_the_client_loads_no_daemon_cli_or_database_module():
    code = (
        "import sys, json; from kleio_client import kleio_logger; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    heavy = {"kleiod", "kleio_cli", "typer", "pymongo", "git", "psutil", "platformdirs"}
    assert not heavy.intersection(name.split(".")[0] for name in loaded)
