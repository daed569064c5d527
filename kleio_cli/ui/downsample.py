"""Curves thinned for the view: the lowest and highest point of every pixel's bucket.

A chart ``points`` pixels wide shows at most two values of a curve per pixel column,
its minimum and its maximum there, whatever the number of records: so a million-point
curve is drawn from about ``2 * points`` rows with every spike kept (min/max per
bucket, as Grafana and Plotly-resampler do), and zooming asks again for the narrower
range at full resolution.  numpy does the work (a ``kleio[ui]`` dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RECORD = "record"  # the x of a record without a chosen key: its rank in the history


@dataclass(frozen=True)
class View:
    """What part of the curves to show: ``x`` against ``ys``, in ``[low, high]`` (None: all
    of it), ``points`` pixel columns wide (None: every row)."""

    x: str
    ys: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    points: int | None = None


def numbers(column: Sequence[Any]) -> np.ndarray:
    """The column as floats, NaN where a value is missing or not a finite number."""
    try:  # the usual column: numbers, some missing (at C speed)
        values = np.array([math.nan if v is None else v for v in column], dtype=float)
        if values.ndim != 1:  # lists of one length, each made a row
            raise ValueError("not a column of numbers")
    except (TypeError, ValueError):  # texts or lists among them
        values = np.fromiter(map(_number, column), dtype=float, count=len(column))
    values[~np.isfinite(values)] = math.nan
    return values


def _number(value: Any) -> float:
    kind = value.__class__
    if kind is float:
        return value if math.isfinite(value) else math.nan
    if kind is int:
        return float(value)
    return math.nan


def thinned(
    column: Callable[[str], np.ndarray | None], rows: int, view: View
) -> dict[str, list[Any]]:
    """The view's columns (``x`` first), each as long as the others, null where a record
    lacks a number; ``column`` gives a key's values as floats (None: no record has it)."""
    missing = np.full(rows, math.nan)

    def of(key: str) -> np.ndarray:
        found = column(key)
        return missing if found is None else found

    x = np.arange(rows, dtype=float) if view.x == RECORD else of(view.x)
    ys = [of(key) for key in view.ys]
    index = _ascending_extremes(x, ys, view)
    if index is None:
        index = _kept(x, ys, view)
        if view.points is not None and len(index) > 2 * view.points:
            index = _extremes(x, ys, index, view.points)
        index = index[np.argsort(x[index], kind="stable")]  # a chart's x ascends
    return {
        view.x: _listed(x[index]),
        **{key: _listed(y[index]) for key, y in zip(view.ys, ys, strict=True)},
    }


def _kept(x: np.ndarray, ys: list[np.ndarray], view: View) -> np.ndarray:
    """The rows with a number for x and for some curve, within the view's range."""
    keep = np.isfinite(x) & _any_finite(ys, len(x))
    if view.low is not None:
        keep &= x >= view.low
    if view.high is not None:
        keep &= x <= view.high
    return np.flatnonzero(keep)


def _ascending_extremes(x: np.ndarray, ys: list[np.ndarray], view: View) -> np.ndarray | None:
    """The usual case, the same rows as :func:`_extremes` in a few passes: x ascends (a
    step, a time), so the view's range is a slice and each bucket one too, found by
    bisection; every row has a number.  None when that is not the case."""
    if view.points is None or len(x) <= 2 * view.points or not _ascends(x):
        return None
    low = 0 if view.low is None else int(np.searchsorted(x, view.low, "left"))
    high = len(x) if view.high is None else int(np.searchsorted(x, view.high, "right"))
    xs, curves = x[low:high], [y[low:high] for y in ys]
    if len(xs) <= 2 * view.points or not _any_finite(curves, len(xs)).all():
        return None
    width = (xs[-1] - xs[0]) / view.points or 1.0
    edges = xs[0] + width * np.arange(1, view.points)
    starts = np.unique(np.concatenate(([0], np.searchsorted(xs, edges, "left"))))
    ends = np.append(starts[1:], len(xs))
    chosen = [starts, ends - 1]
    for y in curves:
        chosen.append(np.array(_bucket_extremes(y, starts.tolist(), ends.tolist()), dtype=np.intp))
    return low + np.unique(np.concatenate(chosen))


def _bucket_extremes(y: np.ndarray, starts: list[int], ends: list[int]) -> list[int]:
    """Per bucket, the first row of its lowest and of its highest number (none for a
    bucket without one): argmin lands on a NaN when there is one, which then needs the
    slower nanargmin."""
    found: list[int] = []
    for begin, end in zip(starts, ends, strict=True):
        part = y[begin:end]
        lowest = int(part.argmin())
        if part[lowest] == part[lowest]:  # no NaN in the bucket
            found += [begin + lowest, begin + int(part.argmax())]
        elif not np.isnan(part).all():
            found += [begin + int(np.nanargmin(part)), begin + int(np.nanargmax(part))]
    return found


def _ascends(x: np.ndarray) -> bool:
    return bool(np.all(x[1:] >= x[:-1]))


def _any_finite(ys: list[np.ndarray], rows: int) -> np.ndarray:
    found = np.zeros(rows, dtype=bool)
    for y in ys:
        found |= np.isfinite(y)
    return found


def _extremes(x: np.ndarray, ys: list[np.ndarray], index: np.ndarray, points: int) -> np.ndarray:
    """Of the rows ``index``, the first and last of each bucket and, for each curve, its
    lowest and highest row there (linear time: no sort when x ascends already)."""
    xs = x[index]
    low, high = xs.min(), xs.max()
    width = (high - low) / points or 1.0
    bucket = np.minimum(((xs - low) / width).astype(np.int64), points - 1)
    order = (
        np.arange(len(bucket))
        if np.all(bucket[1:] >= bucket[:-1])
        else np.argsort(bucket, kind="stable")
    )
    bucket = bucket[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
    ends = np.concatenate((starts[1:] - 1, [len(bucket) - 1]))
    chosen = [starts, ends]
    for y in ys:
        values = y[index][order]
        for extreme, fill in ((np.minimum, np.inf), (np.maximum, -np.inf)):
            chosen.append(_first_at(values, bucket, starts, extreme, fill))
    return index[order[np.unique(np.concatenate(chosen))]]


def _first_at(
    values: np.ndarray, bucket: np.ndarray, starts: np.ndarray, extreme: np.ufunc, fill: float
) -> np.ndarray:
    """Per bucket (``bucket`` ascending, each starting at ``starts``), the first row holding
    its ``extreme`` value; none for a bucket without a number."""
    filled = np.where(np.isnan(values), fill, values)
    best = extreme.reduceat(filled, starts)
    counts = np.diff(np.append(starts, len(filled)))
    rows = np.flatnonzero((filled == np.repeat(best, counts)) & ~np.isnan(values))
    first = np.ones(len(rows), dtype=bool)
    first[1:] = bucket[rows][1:] != bucket[rows][:-1]
    return rows[first]


def _listed(values: np.ndarray) -> list[Any]:
    """Floats for JSON, NaN as null."""
    out: list[Any] = values.tolist()
    if np.isnan(values).any():
        out = [None if v != v else v for v in out]
    return out
