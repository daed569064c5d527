"""A producer's spill files as the daemon finds them: a living producer's never, a dead
one's once, and one removed while the daemon looked never makes it fail."""

from __future__ import annotations

from kleio_client import spill


def test_only_a_dead_producers_files_are_orphans_and_a_vanished_one_is_skipped(tmp_path):
    directory = tmp_path / "spill"
    living = spill.SpillFile(directory, "aaaa", 0)
    living.add([(3, b"frame")])
    (directory / f"vanished{spill.SUFFIX}").symlink_to(tmp_path / "gone")  # listed, not there
    assert list(spill.orphans(directory)) == []  # locked by its producer
    living.leave()  # the producer ended: its lock is released
    found = list(spill.orphans(directory))
    assert [path for path, _ in found] == [living.path]
    assert list(spill.frames(found[0][0])) == [b"frame"]
    for _, handle in found:
        handle.close()
