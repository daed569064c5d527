"""``kleio branch``: a child of a trial at a point of its history, with changed options.

The child's history is its parent's effective history up to the branch point, then its
own; nothing is copied.  Its id is hash(parent, branch point, overrides), so asking for
the same branch twice resumes it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from kleio_cli.capture.configuration import parse_command, tokens, typed
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_cli.identity import canonical_args
from kleio_cli.redaction import check_runnable
from kleio_cli.render import cell
from kleio_cli.run import RunOptions, run_spec, working_directory
from kleio_runtime.config import resolve

ID_LENGTH = 32


def branch_command(
    trial: str, timestamp: str | None, overrides: list[str], options: RunOptions
) -> int:
    key, value = _timestamp(timestamp)
    with connect(resolve()) as client:
        parent = client.call("trial", id=trial)
        point = client.call("branch_point", id=parent["id"], key=key, value=value)
    check_runnable(parent["command"], parent["id"])
    _say_where(point, key, value)
    argv = override(parent["command"], overrides)
    child = {
        "id": branch_id(parent["id"], point["branch_point"], normalized(overrides)),
        "parent": parent["id"],
        "branch_kind": "branch",
        "branch_point": point["branch_point"],
    }
    child["root"] = child["id"]
    return run_spec(argv, working_directory(parent), options, child)


def _say_where(point: dict[str, Any], key: str | None, value: Any) -> None:
    """Say where the branch starts when it is not where asked: the greatest ``key`` below
    ``value``, as no record has the value itself."""
    found = (point.get("after") or {}).get(key) if key is not None else None
    if key is None or found is None or found == value:
        return
    print(
        f"kleio: no record has {key}={cell(value)}; branching at {key}={cell(found)}, "
        "the greatest below it",
        file=sys.stderr,
    )


def _timestamp(timestamp: str | None) -> tuple[str | None, Any]:
    if timestamp is None:
        return None, None
    key, sign, value = timestamp.partition("=")
    if not sign or not key:
        raise CliError(
            f"kleio: --timestamp takes KEY=VALUE, e.g. epoch=10; got {timestamp!r}", EXIT_USAGE
        )
    return key, typed(value)


def override(argv: list[str], overrides: list[str]) -> list[str]:
    """The parent's command with options replaced or added; positional arguments kept."""
    new = tokens(overrides)
    positional = [group[0] for name, group in new if name is None]
    if positional:
        raise CliError(
            f"kleio: a branch can only change options (--name value), not positional "
            f"arguments: {' '.join(positional)}",
            EXIT_USAGE,
        )
    head = argv[: len(argv) - len(parse_command(argv).args)]
    wanted = {name: [t for n, group in new if n == name for t in group] for name, _ in new}
    result: list[str] = []
    for name, group in tokens(argv[len(head) :]):
        if name in wanted:
            result += wanted.pop(name)  # the first occurrence takes all new values
        elif name is None or not any(name == n for n, _ in new):
            result += group
    for group in wanted.values():
        result += group
    return head + result


def normalized(overrides: list[str]) -> list[str]:
    """``--lr=0.1 --bs 8`` and ``--bs 8 --lr 0.1`` are one set of overrides."""
    groups = tokens(canonical_args(overrides))
    return [t for _, group in sorted(groups, key=lambda g: g[0] or "") for t in group]


def branch_id(parent: str, point: int | None, overrides: list[str]) -> str:
    text = json.dumps(["branch", parent, point, overrides])
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]
