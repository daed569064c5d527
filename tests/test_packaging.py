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
        for top in (
            "kleio",
            "kleiod",
            "kleio_client",
            "kleio_cli",
            "kleio_runtime",
            "kleio_supervisor",
        )
        for path in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= shipped
    assert "kleio_cli.capture" in shipped and "kleiod.storage" in shipped
    assert {"kleio.client", "kleio_client.startup", "kleio_client.integrations"} <= shipped


def _imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` with the top-level modules it imports."""
    import ast

    found = {}
    for path in (REPO / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)  # and each name, which may be a module of it
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(REPO))] = names
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module}: {name}"
        for module, names in _imports(package).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


def test_the_packages_keep_their_seams():
    """DESIGN.md: the CLI asks the daemon, it does not run its code; the client depends on
    pyzmq and msgpack only; the shared runtime and the supervisor import no daemon."""
    assert _offenders("kleio_cli", ("kleiod",)) == []
    assert _offenders("kleio_supervisor", ("kleiod", "kleio_cli")) == []
    assert _offenders("kleio_runtime", ("kleiod", "kleio_cli", "kleio_supervisor")) == []
    assert (
        _offenders(
            "kleio_client",
            (
                "kleiod",
                "kleio_cli",
                "kleio_runtime",
                "kleio_supervisor",
                "pymongo",
                "typer",
                "platformdirs",
                "psutil",
                "git",
            ),
        )
        == []
    )
    assert _offenders("kleiod", ("kleio_cli", "kleio_supervisor")) == []
    # The daemon shares the wire (protocol), the spill files' layout and the version with
    # the client, and nothing else: not its journal, segments or values.
    shared = {
        ".".join(name.split(".")[:2])
        for names in _imports("kleiod").values()
        for name in names
        if name.startswith("kleio_client.")
    }
    assert shared <= {"kleio_client.protocol", "kleio_client.spill", "kleio_client.version"}, shared
