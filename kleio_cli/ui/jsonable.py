"""Journal values as the JSON a browser parses: as `kleio ... --json` writes them (NaN and
infinities as null: JavaScript's JSON.parse refuses Python's bare ``NaN``), compact, and
anything else by its repr."""

from __future__ import annotations

import json
from typing import Any

from kleio_cli.render import finite


def dumps(value: Any) -> str:
    try:  # the usual answer has no NaN: written at C speed, no walk before
        return _encoded(value)
    except ValueError:  # a NaN or an infinity somewhere
        return _encoded(finite(value))


def _encoded(value: Any) -> str:
    return json.dumps(
        value, allow_nan=False, separators=(",", ":"), ensure_ascii=False, default=_other
    )


def _other(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float):
        return None
    return repr(value)
