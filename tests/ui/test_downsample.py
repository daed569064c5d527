"""Curves thinned for the view: the rows the bisecting path picks for an ascending x are
the rows of the general min/max-per-bucket path, every spike is kept, and a zoom reads
its range at full resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kleio_cli.ui import downsample
from kleio_cli.ui.downsample import View


def general(x: np.ndarray, ys: list[np.ndarray], view: View) -> np.ndarray:
    index = downsample._kept(x, ys, view)
    if view.points is not None and len(index) > 2 * view.points:
        index = downsample._extremes(x, ys, index, view.points)
    return index[np.argsort(x[index], kind="stable")]


def curves(rows: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    random = np.random.default_rng(seed)
    x = np.cumsum(random.integers(0, 3, rows)).astype(float)  # ascending, with repeats
    loss = random.normal(size=rows)
    acc = random.normal(size=rows)
    acc[random.random(rows) < 0.3] = math.nan  # some records lack it
    return x, [loss, acc]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("points", [1, 7, 300])
@pytest.mark.parametrize("span", [(None, None), (500.0, None), (1000.0, 4000.0)])
def test_the_ascending_path_picks_the_rows_of_the_general_one(seed, points, span):
    x, ys = curves(20_000, seed)
    view = View("step", ("loss", "acc"), span[0], span[1], points)
    fast = downsample._ascending_extremes(x, ys, view)
    assert fast is not None, "an ascending x with numbers everywhere takes the fast path"
    assert fast.tolist() == general(x, ys, view).tolist()


def test_a_spike_is_kept_and_a_zoom_reads_every_row_of_its_range():
    rows = 1_000_000
    x = np.arange(rows, dtype=float)
    loss = np.ones(rows)
    loss[123_457] = 1e6
    columns = {"step": x, "loss": loss}
    thinned = downsample.thinned(columns.get, rows, View("step", ("loss",), points=500))
    assert len(thinned["step"]) <= 4 * 500 and max(thinned["loss"]) == 1e6
    zoomed = downsample.thinned(
        columns.get, rows, View("step", ("loss",), 123_400.0, 123_500.0, points=500)
    )
    assert zoomed["step"] == list(np.arange(123_400.0, 123_501.0))


def test_an_unordered_or_gapped_x_takes_the_general_path():
    x, ys = curves(5_000, 0)
    view = View("step", ("loss",), points=50)
    shuffled = x[::-1].copy()
    assert downsample._ascending_extremes(shuffled, ys[:1], view) is None
    gapped = ys[1]  # NaN in some rows: those rows are dropped, not a slice
    assert downsample._ascending_extremes(x, [gapped], view) is None
