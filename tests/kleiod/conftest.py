"""Storage backends for the contract suite: SQLite files, and MongoDB over the wire.

MongoDB is the session's real server (``mongodb_server`` in tests/conftest.py), each
test with a database of its own.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "mongodb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, as a URL (what KLEIO_DATABASE holds)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite'}"
    base = request.getfixturevalue("mongodb_server")
    return f"{base}/kleio_test_{uuid.uuid4().hex[:12]}"
