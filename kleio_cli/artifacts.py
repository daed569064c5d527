"""A trial's artifacts: ``kleio artifacts`` lists those of its effective history,
``kleio artifact get`` copies the latest one matching a file name and metadata."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from kleio_cli import render
from kleio_cli.capture.configuration import typed
from kleio_cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from kleio_cli.request import call


def artifacts(trial: str, as_json: bool) -> None:
    found = call("artifacts", id=trial)
    if as_json:
        render.print_json([{k: v for k, v in a.items() if k != "path"} for a in found])
        return
    if not found:
        print("no artifacts", file=sys.stderr)
        return
    rows = [
        [
            a["filename"],
            a["size"],
            described(a["metadata"]),
            f"{render.short(a['trial'])}:{a['execution']}",
            a["sha256"][:12],
        ]
        for a in found
    ]
    print(render.table(["FILENAME", "BYTES", "METADATA", "FROM", "SHA256"], rows))


def artifact_get(trial: str, filename: str, where: list[str], output: str | None) -> None:
    """Copy the latest matching artifact of the effective history to ``output``."""
    metadata = dict(_where(w) for w in where)
    found = call("artifacts", id=trial, filename=filename, metadata=metadata)
    if not found:
        raise CliError(
            f"kleio: trial {trial} has no artifact {filename!r}"
            + (f" where {' '.join(where)}" if where else "")
            + "; see `kleio artifacts "
            + trial
            + "`",
            EXIT_NOT_FOUND,
        )
    latest = found[-1]
    target = Path(output or Path(filename).name)
    if target.is_dir():
        target = target / Path(filename).name
    shutil.copyfile(latest["path"], target)
    print(
        f"{target} ({latest['size']} bytes, {described(latest['metadata'])}, from "
        f"{render.short(latest['trial'])}:{latest['execution']})",
        file=sys.stderr,
    )


def _where(text: str) -> tuple[str, Any]:
    key, sign, value = text.partition("=")
    if not sign or not key:
        raise CliError(f"kleio: --where takes KEY=VALUE; got {text!r}", EXIT_USAGE)
    return key, typed(value)


def described(metadata: dict[str, Any]) -> str:
    """An artifact's metadata as ``key=value`` words; ``-`` when it has none."""
    return " ".join(f"{k}={v}" for k, v in metadata.items()) or "-"
