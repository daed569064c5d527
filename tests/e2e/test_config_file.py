"""Settings in the config file reach every part through the one resolver: the CLI's
namespace names the trial, and the trial's client gets its flush timeout and buffer bound
from its supervisor, not by reading the file itself."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Env, trial_id

PRINTS_SETTINGS = """
    import json, os
    from kleio_client import kleio_logger
    kleio_logger.log_statistic(step=1)
    print(json.dumps({k: os.environ.get(k) for k in
                      ("KLEIO_FLUSH_TIMEOUT", "KLEIO_BUFFER_BYTES", "KLEIO_RUNTIME_DIR")}))
"""


def test_the_config_file_s_settings_reach_the_cli_and_the_trial(
    kleio, script, isolated: Env, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("KLEIO_FLUSH_TIMEOUT")
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text(
        'namespace = "vision-lab"\nflush_timeout = 17.5\nbuffer_bytes = 1048576\n'
    )
    name = script(PRINTS_SETTINGS)
    done = kleio("python", name)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "KLEIO_FLUSH_TIMEOUT": "17.5",
        "KLEIO_BUFFER_BYTES": "1048576",
        "KLEIO_RUNTIME_DIR": str(isolated.kleio_runtime),
    }
    info = kleio.json("info", trial_id(done.stderr))
    assert info["identity"]["user"] == "vision-lab"
    assert kleio.json("stats", trial_id(done.stderr)) == [{"step": 1}]
