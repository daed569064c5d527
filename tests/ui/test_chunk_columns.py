"""Stored chunks decoded into float columns, run by run: the same columns as unpacking
every record with msgpack, for the shapes training loops log and those they rarely do."""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
import numpy as np
import pytest

from kleio_cli.ui import chunk_columns
from kleio_client import protocol


def stored(records: list[dict[str, Any]], **packing: Any) -> bytes:
    """A chunk as the daemon stores it: one packed list of [kind, record] pairs."""
    return protocol.packed_items([msgpack.packb(r, **packing) for r in records])


def expected(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[float]]]:
    labels: list[str] = []
    for record in records:
        labels += [key for key in record if key not in labels]

    def number(value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else math.nan
        return 1.0 if value is True else 0.0 if value is False else math.nan

    return labels, {key: [number(r.get(key)) for r in records] for key in labels}


def assert_same(found: tuple[list[str], dict[str, np.ndarray]], records: list[dict[str, Any]]):
    labels, columns = expected(records)
    assert found[0] == labels
    for key in labels:
        assert np.array_equal(found[1][key], np.array(columns[key]), equal_nan=True), key


NUMERIC = {
    "a training loop's": [{"step": i, "loss": 1 / (i + 1), "acc": 0.5} for i in range(65_535)],
    "negative integers, nils and infinities": [
        {"step": -i, "x": None if i % 1000 == 999 else (-1) ** i * 1e308 * 10, "y": -(2**40) - i}
        for i in range(3_000)
    ],
    "two record shapes": [
        {"step": i, **({"val": i * 0.5} if i % 1000 == 0 else {"train": float(i)})}
        for i in range(10_000)
    ],
    "long and non-ASCII keys": [{"step": i, "k" * 40: float(i), "ü": i} for i in range(300)],
}


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numbers_are_read_in_runs_with_the_values_msgpack_gives(name: str):
    records = NUMERIC[name]
    body = stored(records)
    assert chunk_columns._runs(body, len(records)) is not None, "not read in runs"
    assert_same(chunk_columns.chunk(body, 0, len(records)), records)
    for start, end in [(1, len(records) // 2), (len(records) - 1, len(records)), (5, 5)]:
        assert_same(chunk_columns.chunk(body, start, end), records[start:end])


def test_single_floats_are_read_in_runs_too():
    records = [{"step": i, "loss": 1 / (i + 1)} for i in range(1_000)]
    body = stored(records, use_single_float=True)
    assert chunk_columns._runs(body, len(records)) is not None
    labels, columns = chunk_columns.chunk(body, 0, len(records))
    assert labels == ["step", "loss"]
    assert np.allclose(columns["loss"], [1 / (i + 1) for i in range(1_000)], rtol=1e-6)


OTHERS = {
    "texts": [{"step": i, "split": "val" if i % 2 else "train"} for i in range(100)],
    "booleans": [{"step": i, "best": i % 7 == 0} for i in range(100)],
    "lists and maps": [{"step": i, "hist": [1, 2], "meta": {"a": i}} for i in range(50)],
    "a new layout every record": [
        {"a": random.Random(i).choice([1, 1.5, None, -3, 300, 70_000, 2**40, -100])}
        for i in range(5_000)
    ],
}


@pytest.mark.parametrize("name", list(OTHERS))
def test_other_values_are_unpacked_by_msgpack_to_the_same_columns(name: str):
    records = OTHERS[name]
    assert_same(chunk_columns.chunk(stored(records), 0, len(records)), records)
    assert_same(chunk_columns.chunk(stored(records), 2, 40), records[2:40])
