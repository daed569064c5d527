"""The first Kleio's import path, and integrations that import their framework only when
asked: real interpreters, real trials."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import trial_id

OLD_PATH = """
    import kleio_client
    from kleio.client.logger import kleio_logger
    from kleio.client import kleio_logger as same
    import kleio.client.logger
    assert kleio_logger is kleio_client.kleio_logger is same
    assert kleio.client.logger.Logger is kleio_client.logger.Logger
    for epoch in range(3):
        kleio_logger.log_statistic(epoch=epoch, loss=1 / (epoch + 1))
"""


def test_the_first_kleio_s_import_path_logs_into_the_trial(kleio, script):
    name = script(OLD_PATH)
    trial = trial_id(kleio.ok("python", name).stderr)
    rows = kleio.json("stats", trial)
    assert [row["epoch"] for row in rows] == [0, 1, 2]


def test_the_first_kleio_s_import_path_runs_without_kleio_too(script, workdir):
    name = script(OLD_PATH)
    done = subprocess.run(
        [sys.executable, name], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "[kleio] epoch=2 loss=0.333" in done.stderr


def test_kleio_client_and_its_integrations_package_import_no_framework():
    probe = (
        "import sys, json, kleio_client, kleio_client.integrations, kleio.client.logger\n"
        "heavy = ('torch', 'lightning', 'pytorch_lightning', 'transformers', 'keras',"
        " 'tensorflow', 'tensorboard', 'tensorboardX', 'kleio_client.integrations.lightning')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    "module, hidden, extra",
    [
        ("lightning", ["lightning", "pytorch_lightning"], "kleio[lightning]"),
        ("transformers", ["transformers"], "kleio[transformers]"),
        ("keras", ["keras"], "kleio[keras]"),
    ],
)
def test_an_integration_without_its_framework_says_which_extra_to_install(
    module: str, hidden: list[str], extra: str
):
    # A None in sys.modules makes an import fail as if the package were not installed.
    probe = (
        f"import sys\nfor name in {hidden!r}: sys.modules[name] = None\n"
        f"import kleio_client.integrations.{module}\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and extra in last, done.stderr
