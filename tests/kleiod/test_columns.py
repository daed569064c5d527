"""Statistics cut into columns a page at a time (what `kleio stats` reads), on every
backend: keys in order of first appearance, None where a record lacks one, only the
records of each segment's slice that match, and a clear refusal for a page that is not
one of stored statistics."""

from __future__ import annotations

import msgpack
import pytest

from kleio_client import protocol
from kleio_client.protocol import Condition
from kleiod import columns, history
from kleiod.errors import BadRequest
from kleiod.storage import open_storage
from kleiod.storage.base import POSITION_STRIDE, Chunk, Claim, TrialSpec

SPEC = TrialSpec(id="cd" * 16, command=["python", "t.py"], identity={}, cwd="/", user="u")


def _stored(database_url: str):
    storage = open_storage(database_url)
    storage.reserve(SPEC, Claim(host="h", pid=1, lease_seconds=30))
    first = [{"step": 0, "loss": 0.5}, {"step": 1, "loss": 0.25}, {"step": 2, "loss": 0.125}]
    second = [{"step": 3, "loss": 0.1, "lr": 0.01}, {"step": 4, "note": "x", "shape": [1, 2]}]
    for seq, records in ((1, first), (4, second)):
        body = msgpack.packb([[protocol.STATISTIC, r] for r in records])
        storage.append_chunks([Chunk(SPEC.id, 1, "p", seq, len(records), protocol.STATISTIC, body)])
    segments = history.statistic_segments(storage, SPEC.id, bodies=False)
    return storage, [{k: s[k] for k in ("trial", "position", "start", "end")} for s in segments]


def test_a_page_of_segments_as_columns(database_url: str):
    storage, segments = _stored(database_url)
    page = msgpack.unpackb(msgpack.packb(columns.page(storage, segments, [])))  # as sent
    assert page["labels"] == ["step", "loss", "lr", "note", "shape"]
    assert page["columns"] == [
        [0, 1, 2, 3, 4],
        [0.5, 0.25, 0.125, 0.1, None],
        [None, None, None, 0.01, None],
        [None, None, None, None, "x"],
        [None, None, None, None, [1, 2]],
    ]
    assert page["counts"] == [3, 2]
    stored = columns.bodies(storage, segments[::-1])  # in the order asked
    assert [[r["step"] for _, r in msgpack.unpackb(b)] for b in stored] == [[3, 4], [0, 1, 2]]
    sliced = [{**segments[0], "start": 1, "end": 2}, segments[1]]
    matching = columns.page(storage, sliced, [Condition("step", "le", 3)])
    assert matching["columns"][:2] == [[1, 3], [0.25, 0.1]] and matching["counts"] == [1, 1]


@pytest.mark.parametrize(
    "change, says",
    [
        ({"position": 1}, "not a segment of stored statistics"),
        ({"start": -1}, "not a segment of stored statistics"),
        ({"end": POSITION_STRIDE + 1}, "not a segment of stored statistics"),
        ({"position": 1000 * POSITION_STRIDE}, "no statistics of trial"),
        ({"trial": "ef" * 16}, "no statistics of trial"),
        ({"position": float("inf")}, "a segment is a map"),
        ({"start": None}, "a segment is a map"),
    ],
)
def test_what_is_not_a_page_of_stored_statistics_is_refused(database_url: str, change, says):
    storage, segments = _stored(database_url)
    with pytest.raises(BadRequest, match=says):
        columns.page(storage, [{**segments[0], **change}], [])
    with pytest.raises(BadRequest, match=says):
        columns.bodies(storage, [{**segments[0], **change}])
    with pytest.raises(BadRequest, match="a page holds 1 to"):
        columns.page(storage, [], [])
