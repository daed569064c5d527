"""The daemon's spill: chunks kept on disk while the database is away, replayed in order."""

from __future__ import annotations

import msgpack

from kleio_client import protocol
from kleiod.spill import Spill
from kleiod.storage.base import Chunk, Claim, TrialSpec
from kleiod.storage.sqlite import SQLiteStorage


def _chunk(trial: str, seq: int, count: int) -> Chunk:
    body = msgpack.packb(
        [[protocol.STATISTIC, {"step": s}] for s in range(seq, seq + count)], use_bin_type=True
    )
    return Chunk(trial, 1, "p1", seq, count, protocol.STATISTIC, body)


def _storage(tmp_path) -> tuple[SQLiteStorage, str]:
    storage = SQLiteStorage(tmp_path / "journal.sqlite")
    spec = TrialSpec(id="ab" * 32, command=["python", "t.py"], identity={}, cwd="/", user="u")
    storage.reserve(spec, Claim("host", 1, 1e12))
    return storage, spec.id


def test_a_spill_left_by_a_stopped_daemon_is_adopted_and_replayed_once(tmp_path):
    storage, trial = _storage(tmp_path)
    first = Spill(tmp_path / "spill")
    first.add([_chunk(trial, 1, 3), _chunk(trial, 4, 2)])
    first.add([_chunk(trial, 6, 1)])
    assert first.records == 6
    first.close()  # the daemon stops with the database away

    second = Spill(tmp_path / "spill")
    second.adopt()
    assert second.pending and second.records == 6
    storage.append_chunks([_chunk(trial, 1, 3)])  # some were written before: not doubled
    second.replay(storage)
    assert not second.pending and second.records == 0
    assert not list((tmp_path / "spill").iterdir())
    steps = [r["body"]["step"] for r in storage.read_records(trial, [protocol.STATISTIC])]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_live_daemons_spill_is_not_adopted(tmp_path):
    storage, trial = _storage(tmp_path)
    live = Spill(tmp_path / "spill")
    live.add([_chunk(trial, 1, 2)])
    other = Spill(tmp_path / "spill")
    other.adopt()
    assert not other.pending
    live.replay(storage)
    assert len(storage.read_records(trial, [protocol.STATISTIC])) == 2


def test_a_torn_last_entry_keeps_the_entries_before_it(tmp_path):
    storage, trial = _storage(tmp_path)
    spill = Spill(tmp_path / "spill")
    spill.add([_chunk(trial, 1, 2)])
    spill.close()
    (path,) = (tmp_path / "spill").iterdir()
    with open(path, "ab") as handle:  # a crash in the middle of a write
        handle.write(msgpack.packb([trial, 1, "p1", 3, 1, "statistic", b"x" * 100])[:20])
    adopted = Spill(tmp_path / "spill")
    adopted.adopt()
    adopted.replay(storage)
    assert [r["body"]["step"] for r in storage.read_records(trial, [protocol.STATISTIC])] == [1, 2]
