"""`Trial.statistics(sort=...)` orders as ``sort_rank`` says, whichever way it sorts: by
the values themselves (numbers only, or strings only: at C speed) or by their ranks."""

from __future__ import annotations

import math
import random

import pytest

from kleio_client.journal import Trial
from kleio_client.protocol import ABSENT, sort_rank

COLUMNS = {
    "numbers": lambda rng: rng.choice([rng.randint(-3, 3), rng.random(), True, -0.0]),
    "strings": lambda rng: rng.choice(["a", "b", "ab", ""]),
    "nan": lambda rng: rng.choice([1, 0.5, math.nan]),
    "mixed": lambda rng: rng.choice([1, "a", None, [1], math.nan]),
}


@pytest.mark.parametrize("column", sorted(COLUMNS))
@pytest.mark.parametrize("then", [None, *sorted(COLUMNS)])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_the_order_is_sort_ranks_whichever_way(
    column: str, then: str | None, descending: bool, missing: float
):
    """By one key or two, each column of one kind or of several, some records without."""
    rng = random.Random(f"{column} {then} {missing}")
    records = [
        {
            "i": i,
            **{
                key: COLUMNS[kind](rng)
                for key, kind in (("v", column), ("w", then))
                if kind is not None and rng.random() >= missing
            },
        }
        for i in range(500)
    ]
    order = ["v"] if then is None else ["v", "w"]
    keyed = sorted(
        (r for r in records if "v" in r),
        reverse=descending,
        key=lambda r: tuple(sort_rank(r.get(k, ABSENT)) for k in order),
    )
    expected = keyed + [r for r in records if "v" not in r]
    shaped = Trial._shaped(records, None, order, descending, {})
    assert [r["i"] for r in shaped] == [r["i"] for r in expected]
