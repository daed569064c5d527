"""``kleio plot``: one statistic of one or more trials as lines, in the terminal or as a PNG.

A branch's effective history includes what it inherited, so a branch drawn beside its
parent leaves the parent's line at the branch point.  The terminal chart is a grid of
characters (one marker per trial); ``--output FILE.png`` draws with matplotlib (an
optional dependency, imported only then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kleio_cli import render, statistics
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_client import segments as stored
from kleio_runtime.config import resolve

MARKERS = "*o+x#@%&"


@dataclass(frozen=True)
class PlotRequest:
    trials: tuple[str, ...]
    y: str
    x: str | None = None  # the record's rank when None
    where: tuple[str, ...] = ()
    output: str | None = None
    width: int = 72
    height: int = 20


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]


def plot(request: PlotRequest) -> None:
    series = _series(request)
    if not any(s.points for s in series):
        raise CliError(
            f"kleio: no record has a number for {request.y!r}"
            + (f" and {request.x!r}" if request.x else ""),
            EXIT_USAGE,
        )
    if request.output:
        _png(series, request)
        print(f"wrote {request.output}")
    else:
        print(chart(series, request))


def _series(request: PlotRequest) -> list[Series]:
    where = statistics.conditions(list(request.where))
    found = []
    with connect(resolve()) as client:
        for trial in request.trials:
            trial_id = str(client.call("resolve", id=trial))
            records, _ = statistics.unpacked(stored.read(client, trial_id))
            points = []
            for rank, record in enumerate(r for r in records if all(c.holds(r) for c in where)):
                x: Any = rank if request.x is None else record.get(request.x)
                y: Any = record.get(request.y)
                if _number(x) and _number(y):
                    points.append((float(x), float(y)))
            found.append(Series(render.short(trial_id) or trial_id, points))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def chart(series: list[Series], request: PlotRequest) -> str:
    """The series on a character grid, with the y range on the left, the x range below,
    and a legend."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    width, height = max(10, request.width), max(5, request.height)
    grid = [[" "] * width for _ in range(height)]
    for index, one in enumerate(series):
        marker = MARKERS[index % len(MARKERS)]
        for x, y in one.points:
            column = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (width - 1))
            row = 0 if y1 == y0 else round((y1 - y) / (y1 - y0) * (height - 1))
            grid[row][column] = marker
    top, bottom = f"{y1:.4g}", f"{y0:.4g}"
    margin = max(len(top), len(bottom))
    lines = []
    for row, cells in enumerate(grid):
        label = top if row == 0 else bottom if row == height - 1 else ""
        lines.append(f"{label:>{margin}} |{''.join(cells)}")
    lines.append(" " * margin + " +" + "-" * width)
    left, right = f"{x0:.4g}", f"{x1:.4g}"
    lines.append(" " * (margin + 2) + left + right.rjust(width - len(left)))
    lines.append(" " * (margin + 2) + f"x: {request.x or 'record'}   y: {request.y}")
    lines += [f"  {MARKERS[i % len(MARKERS)]} {s.label}" for i, s in enumerate(series)]
    return "\n".join(lines)


def _png(series: list[Series], request: PlotRequest) -> None:
    assert request.output is not None
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise CliError(
            "kleio: --output needs matplotlib: pip install matplotlib "
            '(or pip install "kleio[analysis]")',
            EXIT_USAGE,
        ) from None
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    for one in series:
        if one.points:
            axes.plot([x for x, _ in one.points], [y for _, y in one.points], label=one.label)
    axes.set_xlabel(request.x or "record")
    axes.set_ylabel(request.y)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(request.output)
    pyplot.close(figure)
