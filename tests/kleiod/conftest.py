"""Storage backends for the contract suite: SQLite files, and MongoDB over the wire.

MongoDB is the session's real server (``mongodb_server`` in tests/conftest.py), each
test with a database of its own.  ``another_database_url`` is a second one, of either
backend, for journals moved between databases.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


def _fresh(request: pytest.FixtureRequest, backend: str, path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{path}"
    base = request.getfixturevalue("mongodb_server")
    return f"{base}/kleio_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "mongodb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, as a URL (what KLEIO_DATABASE holds)."""
    return _fresh(request, request.param, tmp_path / "journal.sqlite")


@pytest.fixture(params=["to-sqlite", "to-mongodb"])
def another_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second fresh database, of each backend: where a journal is moved to."""
    return _fresh(request, request.param.removeprefix("to-"), tmp_path / "other.sqlite")
