"""Artifacts: stored by content, loaded back to resume from the last checkpoint."""

from __future__ import annotations

import hashlib

from tests.conftest import trial_id

CHECKPOINTING = """
    import io, json, os, sys
    from kleio_client import kleio_logger

    start = 0
    ckpt = kleio_logger.load_artifact("ckpt.json")
    if ckpt is not None:
        with ckpt.open() as f:
            state = json.load(f)
        assert ckpt.metadata["epoch"] == state["epoch"]
        start = state["epoch"] + 1
        print("resumed from epoch", state["epoch"], flush=True)
    weight = 1.0 if ckpt is None else state["weight"]
    for epoch in range(start, 6):
        if epoch == 4 and os.environ["KLEIO_EXECUTION"] == "1":
            raise SystemExit("simulated crash in epoch 4")
        weight *= 0.5
        kleio_logger.log_statistic(epoch=epoch, weight=weight)
        blob = json.dumps({"epoch": epoch, "weight": weight}).encode()
        kleio_logger.log_artifact("ckpt.json", io.BytesIO(blob), epoch=epoch)
"""


def test_a_resumed_execution_loads_its_checkpoint_and_continues(kleio, script):
    name = script(CHECKPOINTING)
    first = kleio("python", name)
    assert first.returncode == 1
    second = kleio("python", name)
    assert second.returncode == 0, second.stderr
    assert "resumed from epoch 3" in second.stdout
    tid = trial_id(second.stderr)
    stats = kleio.json("stats", tid)
    assert [r["epoch"] for r in stats] == [0, 1, 2, 3, 4, 5]
    assert stats[-1]["weight"] == 0.5**6
    artifacts = kleio.json("info", tid)["artifacts"]
    assert [(a["metadata"]["epoch"], a["execution"]) for a in artifacts] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
    ]


def test_artifacts_are_content_addressed_and_matched_by_metadata(kleio, script, isolated):
    payload = bytes(range(256)) * 20_000  # 5 MB: several chunks
    name = script("""
        import io
        from kleio_client import kleio_logger
        payload = bytes(range(256)) * 20_000
        kleio_logger.log_artifact("weights.bin", io.BytesIO(payload), epoch=1, best=False)
        kleio_logger.log_artifact("weights.bin", payload, epoch=2, best=True)
        kleio_logger.log_artifact("other.bin", io.BytesIO(b"other"), epoch=2)
        assert kleio_logger.load_artifact("weights.bin").metadata == {"epoch": 2, "best": True}
        found = kleio_logger.load_artifact("weights.bin", epoch=1)
        assert found.metadata == {"epoch": 1, "best": False}
        with found.open() as f:
            assert f.read() == payload
        assert found.filename == "weights.bin"
        assert kleio_logger.load_artifact("weights.bin", epoch=7) is None
        assert kleio_logger.load_artifact("missing.bin") is None
        print("checked", flush=True)
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    assert "checked" in done.stdout
    digest = hashlib.sha256(payload).hexdigest()
    stored = isolated.data / "kleio" / "artifacts" / digest[:2] / digest
    assert stored.read_bytes() == payload
    blobs = [p for p in (isolated.data / "kleio" / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # the same bytes logged twice are stored once


def test_an_artifact_of_exactly_whole_chunks_is_stored_whole(kleio, script):
    name = script("""
        import hashlib
        from kleio_client import kleio_logger
        payload = bytes(range(256)) * (2 * 4096)  # exactly 2 MiB: the last chunk is empty
        kleio_logger.log_artifact("whole.bin", payload)
        found = kleio_logger.load_artifact("whole.bin")
        assert found.sha256 == hashlib.sha256(payload).hexdigest() and found.size == len(payload)
    """)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
