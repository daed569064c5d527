"""``kleio compare``: trials side by side, the configuration values that differ and the last
(or best) value of chosen statistics."""

from __future__ import annotations

import math
import sys
from typing import Any

from kleio_cli import render, statistics
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client import segments as stored
from kleio_runtime.config import resolve


def compare(trials: list[str], keys: tuple[str, ...], best: str | None, as_json: bool) -> None:
    if len(trials) < 2:
        raise CliError("kleio: compare needs two trials or more", EXIT_USAGE)
    with connect(resolve()) as client:
        details = [client.call("info", id=t) for t in trials]
        rows = [_row(client, d, keys, best) for d in details]
    options = [dict((d.get("configuration") or {}).get("options") or {}) for d in details]
    differing = [
        k
        for k in dict.fromkeys(k for o in options for k in o)
        if len({repr(o.get(k)) for o in options}) > 1
    ]
    shown = list(keys) or sorted({k for row in rows for k in row})
    if as_json:
        render.print_json(
            [
                {
                    "id": d["id"],
                    "configuration": {k: o.get(k) for k in differing},
                    "statistics": row,
                }
                for d, o, row in zip(details, options, rows, strict=True)
            ]
        )
        return
    headers = ["ID", *differing, *shown]
    table = [
        [render.short(d["id"]), *(o.get(k) for k in differing), *(row.get(k) for k in shown)]
        for d, o, row in zip(details, options, rows, strict=True)
    ]
    print(render.table(headers, table))
    if not differing:
        print("kleio: the trials' options are the same", file=sys.stderr)


def _row(
    client: Any, detail: dict[str, Any], keys: tuple[str, ...], best: str | None
) -> dict[str, Any]:
    """The trial's last record, or with ``best`` (``loss``, or ``max:acc``) the best one;
    only ``keys`` when given."""
    records, _ = statistics.unpacked(stored.read(client, detail["id"]))
    if best:
        sign, _, key = best.rpartition(":")
        if sign not in ("", "min", "max"):
            raise CliError(f"kleio: --best takes KEY, min:KEY or max:KEY; got {best!r}", EXIT_USAGE)
        scored = [r for r in records if _number(r.get(key))]
        chosen = (max if sign == "max" else min)(scored, key=lambda r: r[key], default={})
    else:
        chosen = records[-1] if records else {}
    return {k: chosen.get(k) for k in keys} if keys else dict(chosen)


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )
