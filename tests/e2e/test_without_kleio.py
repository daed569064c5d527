"""A script that uses kleio_logger runs unchanged with plain python."""

from __future__ import annotations

import subprocess
import sys


def test_plain_python_prints_statistics_and_runs_normally(script, workdir):
    name = script("""
        import io
        from kleio_client import kleio_logger
        assert kleio_logger.trial_id is None
        assert kleio_logger.load_artifact("ckpt.pt") is None
        kleio_logger.log_artifact("ckpt.pt", io.BytesIO(b"x"), epoch=1)
        kleio_logger.log_artifact("ckpt.pt", io.BytesIO(b"y"), epoch=2)
        for epoch in range(2):
            kleio_logger.log_statistic(epoch=epoch, loss=0.5)
        print("finished")
    """)
    done = subprocess.run(
        [sys.executable, name], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "finished\n"
    lines = done.stderr.splitlines()
    assert lines.count("[kleio] not running under kleio: artifacts are not stored") == 1
    assert "[kleio] epoch=0 loss=0.5" in lines
    assert "[kleio] epoch=1 loss=0.5" in lines
    # no daemon was started and nothing was written
    assert not (workdir.parent / "data").exists()
