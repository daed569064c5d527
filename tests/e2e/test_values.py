"""Values and keys round-trip through the journal exactly, on both backends, or are refused
at the call with a clear error."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import trial_id


@pytest.fixture(params=["sqlite", "mongodb"])
def backend(request, monkeypatch) -> str:
    if request.param == "mongodb":
        base = request.getfixturevalue("mongodb_server")
        monkeypatch.setenv("KLEIO_DATABASE", f"{base}/kleio_values_{uuid.uuid4().hex[:10]}")
    return str(request.param)


ROUND_TRIP = r"""
import json, sys
from kleio_client import kleio_logger
from kleio_client.values import MAX_STRING
records = [
    {"épocha": 1, "损失": 0.5, "emoji 🎉": "✓"},
    {"a.b": 1, "$set": 2, "": 3, ".": 4, "$": 5, "x.y.$z": {"k.1": {"$in": [1, 2]}}},
    {"long": "λ" * MAX_STRING},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "big": 2**63 - 1,
     "neg": -(2**63), "none": None, "flag": True},
    {"deep": {"l1": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": [1, [2, [3, {"z": 0}]]]}}}}}}}},
]
for record in records:
    kleio_logger.log_statistic(**record)
refusals = []
for bad in ({"long": "x" * (MAX_STRING + 1)}, {"deep": {}}, {"big": 2**64},
            {"obj": object()}, {"bytes": b"raw"}, {"d": {1: "int key"}},
            {"name": "bad\udcff"}):
    if "deep" in bad:
        nested = {}
        for _ in range(40):
            nested = {"n": nested}
        bad = {"deep": nested}
    try:
        kleio_logger.log_statistic(**bad)
        refusals.append("accepted")
    except (TypeError, ValueError) as exc:
        refusals.append(str(exc).splitlines()[0][:200])
print(json.dumps(refusals))
"""


def test_keys_and_values_round_trip_or_are_refused_at_the_call(kleio, script, backend):
    done = kleio.ok("python", script(ROUND_TRIP))
    tid = trial_id(done.stderr)
    refusals = json.loads(done.stdout)
    assert "accepted" not in refusals
    assert "longer than 1048576" in refusals[0] and "log_artifact" in refusals[0]
    assert "nesting deeper than 32 levels" in refusals[1]
    assert "64 bits" in refusals[2]
    assert "not supported" in refusals[3] and "not supported" in refusals[4]
    assert "dict keys must be str" in refusals[5]
    assert "cannot log name" in refusals[6] and "not valid unicode" in refusals[6]

    stored = kleio.json("stats", tid)
    assert len(stored) == 5
    assert stored[0] == {"épocha": 1, "损失": 0.5, "emoji 🎉": "✓"}
    assert stored[1] == {
        "a.b": 1,
        "$set": 2,
        "": 3,
        ".": 4,
        "$": 5,
        "x.y.$z": {"k.1": {"$in": [1, 2]}},
    }
    assert stored[2] == {"long": "λ" * (1 << 20)}
    numbers = stored[3]
    assert (numbers["nan"], numbers["inf"], numbers["-inf"]) == (None, None, None)  # JSON's
    csv = kleio.ok("stats", tid, "--keys", "nan,inf,-inf", "--format", "csv").stdout
    assert csv.splitlines().count("nan,inf,-inf") == 2  # the header, and the values kept
    assert (numbers["big"], numbers["neg"]) == (2**63 - 1, -(2**63))
    assert (numbers["none"], numbers["flag"]) == (None, True)
    assert stored[4]["deep"]["l1"]["l2"]["l3"]["l4"]["l5"]["l6"]["l7"] == [1, [2, [3, {"z": 0}]]]
