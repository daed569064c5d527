"""What a statistic's or an artifact's metadata values may be, and their conversion.

Accepted: str (up to ``MAX_STRING`` characters), int (64-bit), float (NaN and
inf kept), bool, None, and lists, tuples and dicts (string keys, any text) of
these, nested up to ``MAX_DEPTH`` levels; numpy scalars and 0-d arrays are
converted to the Python value without importing numpy.  Anything else is a
``TypeError`` (a ``ValueError`` past a limit) at the call, naming the key.
"""

from __future__ import annotations

from typing import Any

_SCALARS = frozenset({str, int, float, bool, type(None)})
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
MAX_DEPTH = 32  # levels of nested lists and dicts
MAX_STRING = 1 << 20  # characters in one string (longer text belongs in an artifact)


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """Check (and convert in place) the values of one record; return it."""
    for key, value in record.items():
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING:
                raise _too_long(key, value)
        elif kind not in _SCALARS or kind is int:
            record[key] = normalize(key, value)
    return record


def not_text(record: dict[str, Any], exc: UnicodeEncodeError) -> ValueError:
    """The error for a record holding a str that is not text (lone surrogates)."""
    key = next((k for k, v in record.items() if _unencodable(v)), "?")
    return ValueError(
        f"cannot log {key}: it holds {exc.object[exc.start : exc.end]!r}, which "
        f"is not valid unicode text ({exc.reason})"
    )


def _unencodable(value: Any) -> bool:
    try:
        __import__("msgpack").packb(value, use_bin_type=True)
    except UnicodeEncodeError:
        return True
    except Exception:  # other failures are reported by their own checks
        return False
    return False


def _too_long(key: str, value: str) -> ValueError:
    return ValueError(
        f"cannot log {key}: a string of {len(value)} characters is longer than "
        f"{MAX_STRING}; store long text as an artifact (log_artifact)"
    )


def normalize(key: str, value: Any, depth: int = 0) -> Any:
    """Return ``value`` as a plain storable value, or raise naming ``key``."""
    kind = type(value)
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(
                f"cannot log {key}={value}: integers must fit in 64 bits; log it as a str or float"
            )
        return value
    if kind is str and len(value) > MAX_STRING:
        raise _too_long(key, value)
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise TypeError(f"cannot log {key}: nesting deeper than {MAX_DEPTH} levels")
    if kind is list or kind is tuple:
        return [normalize(key, item, depth + 1) for item in value]
    if kind is dict:
        return _normalize_dict(key, value, depth)
    converted = _convert_foreign(value)
    if converted is not _UNSUPPORTED:
        return normalize(key, converted, depth + 1)
    name = f"{kind.__module__}.{kind.__qualname__}"
    raise TypeError(
        f"cannot log {key}={_short_repr(value)}: values of type {name} are not supported"
        " (use str, int, float, bool, None, or lists and dicts of them)"
    )


def _normalize_dict(key: str, value: dict[Any, Any], depth: int) -> dict[str, Any]:
    out = {}
    for inner_key, inner_value in value.items():
        if not isinstance(inner_key, str):
            raise TypeError(
                f"cannot log {key}: dict keys must be str, got {type(inner_key).__name__} "
                f"{inner_key!r}"
            )
        out[str(inner_key)] = normalize(f"{key}.{inner_key}", inner_value, depth + 1)
    return out


_UNSUPPORTED = object()


def _convert_foreign(value: Any) -> Any:
    """numpy scalars and 0-d arrays, and subclasses of the plain types."""
    kind = type(value)
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return _UNSUPPORTED


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def orders_by_itself(values: list[Any]) -> bool:
    """Whether values sort by themselves (at C speed) as by ``sort_rank``: numbers without
    NaN (NaN is not equal to itself), or strings."""
    kinds = set(map(type, values))
    if kinds <= {int, float, bool}:
        return not (float in kinds and any(v != v for v in values))
    return kinds == {str}
