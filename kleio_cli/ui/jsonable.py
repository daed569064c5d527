"""Journal values as the JSON a browser parses: NaN and infinities as null (JavaScript's
JSON.parse refuses Python's bare ``NaN``), bytes as text, anything else by its repr."""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any) -> str:
    return json.dumps(
        _clean(value), allow_nan=False, separators=(",", ":"), ensure_ascii=False, default=_other
    )


def _clean(value: Any) -> Any:
    kind = value.__class__
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {str(k): _clean(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        if all(v.__class__ is int or v.__class__ is str or v is None for v in value):
            return value  # a column of steps or names: as it is (fast)
        return [_clean(v) for v in value]
    return value


def _other(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float):
        return None
    return repr(value)
