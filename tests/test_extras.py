"""What an install without extras still does: SQLite-only users need no pymongo, and a
MongoDB URL then says which extra to install; the client ships its type information."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WITHOUT_PYMONGO = """
import sys
sys.modules["pymongo"] = None  # as if not installed: importing it raises ImportError
from kleiod.errors import ConfigError
from kleiod.storage import open_storage
storage = open_storage("sqlite:///" + sys.argv[1])
storage.close()
try:
    open_storage("mongodb://127.0.0.1:1/kleio")
except ConfigError as exc:
    print(exc)
"""


def test_sqlite_needs_no_pymongo_and_mongodb_names_the_extra(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYMONGO, str(tmp_path / "j.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'kleio[mongo]'" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1


def test_the_client_library_is_marked_typed():
    assert (REPO / "kleio_client" / "py.typed").is_file()
    from setuptools.config.pyprojecttoml import read_configuration

    config = read_configuration(REPO / "pyproject.toml")
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["kleio_client"]
    assert config["project"]["optional-dependencies"]["mongo"] == ["pymongo>=4.6"]
    assert not any(d.startswith("pymongo") for d in config["project"]["dependencies"])
