"""Every package of the source tree ships: a non-editable install (the README's quick
start) once lacked kleio_cli.capture."""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import find_packages

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_package_is_in_the_distribution():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(where=str(REPO), include=include))
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for top in ("kleiod", "kleio_client", "kleio_cli", "kleio_runtime", "kleio_supervisor")
        for path in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= shipped
    assert "kleio_cli.capture" in shipped and "kleiod.storage" in shipped
