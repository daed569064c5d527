"""TensorBoard scalars journaled with no change to the script: real trials whose scripts
write through torch's and tensorboardX's SummaryWriter, under `kleio`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Env, trial_id
from tests.integrations.frameworks import needs

needs("torch", "tensorboard")

WRITES_SCALARS = """
    import sys
    from {module} import SummaryWriter
    writer = SummaryWriter("runs/exp")
    for step in range(4):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
        writer.add_scalars("lr", {{"encoder": 0.1 * step, "decoder": 0.5}}, global_step=step)
    writer.add_scalar("no_step", 7.5)
    writer.close()
    print("KLEIO_CLIENT_LOADED", "kleio_client" in sys.modules)
"""

EXPECTED = [
    row
    for step in range(4)
    for row in (
        {"loss": 1.0 / (step + 1), "step": step},
        {"lr/encoder": pytest.approx(0.1 * step), "lr/decoder": 0.5, "step": step},
    )
] + [{"no_step": 7.5}]


def _records(rows: object) -> list[dict[str, object]]:
    assert isinstance(rows, list)
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _event_files(workdir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(workdir)) for path in (workdir / "runs").rglob("events.out.tfevents.*")
    )


@pytest.mark.slow
@pytest.mark.parametrize("module", ["torch.utils.tensorboard", "tensorboardX"])
def test_an_unmodified_script_s_summary_writer_scalars_become_statistics(
    kleio, script, workdir: Path, module: str
):
    needs(module.split(".")[0])
    name = script(WRITES_SCALARS.format(module=module))
    done = kleio.ok("python", name)
    assert "KLEIO_CLIENT_LOADED True" in done.stdout
    rows = kleio.json("stats", trial_id(done.stderr))
    assert _records(rows) == EXPECTED
    assert _event_files(workdir), "the event files are written as before"


@pytest.mark.slow
def test_no_capture_tensorboard_journals_nothing_and_still_writes_the_event_files(
    kleio, script, workdir: Path
):
    name = script(WRITES_SCALARS.format(module="torch.utils.tensorboard"))
    done = kleio.ok("--no-capture-tensorboard", "python", name)
    assert "KLEIO_CLIENT_LOADED False" in done.stdout
    assert kleio.json("stats", trial_id(done.stderr)) == []
    assert _event_files(workdir)


@pytest.mark.slow
def test_the_configuration_turns_the_capture_off_and_the_flag_back_on(kleio, script, isolated: Env):
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text("capture_tensorboard = false\n")
    name = script(WRITES_SCALARS.format(module="torch.utils.tensorboard"))
    off = kleio.ok("python", name, "--run", "1")
    assert kleio.json("stats", trial_id(off.stderr)) == []
    on = kleio.ok("run", "--capture-tensorboard", "python", name, "--run", "2")
    assert _records(kleio.json("stats", trial_id(on.stderr))) == EXPECTED


BOTH = """
    from torch.utils.tensorboard import SummaryWriter
    from kleio_client import kleio_logger
    writer = SummaryWriter("runs/both")
    for step in range(3):
        writer.add_scalar("train/loss", 2.0 - step, step)
        kleio_logger.log_statistic(step=step, accuracy=0.5 + step / 10)
    writer.close()
"""


@pytest.mark.slow
def test_a_script_that_also_logs_through_kleio_logger_gets_both(kleio, script):
    name = script(BOTH)
    trial = trial_id(kleio.ok("python", name).stderr)
    assert _records(kleio.json("stats", trial)) == [
        row
        for step in range(3)
        for row in (
            {"train/loss": 2.0 - step, "step": step},
            {"step": step, "accuracy": pytest.approx(0.5 + step / 10)},
        )
    ]


NO_TENSORBOARD = """
    import json, sys
    print("LOADED", json.dumps(sorted(
        m for m in ("torch", "tensorboard", "tensorboardX", "kleio_client", "numpy")
        if m in sys.modules
    )))
    print("SITECUSTOMIZE", getattr(sys.modules.get("sitecustomize"), "MARK", None))
"""


def test_a_script_that_writes_no_tensorboard_log_imports_nothing_for_it(
    kleio, script, workdir: Path
):
    name = script(NO_TENSORBOARD)
    done = kleio.ok("python", name)
    assert "LOADED []" in done.stdout


def test_the_user_s_own_sitecustomize_still_runs(kleio, script, workdir: Path):
    site = workdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("MARK = 'the user s own'\n")
    name = script(NO_TENSORBOARD)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = kleio("python", name, env=env)
    assert done.returncode == 0, done.stderr
    assert "SITECUSTOMIZE the user s own" in done.stdout
    assert "LOADED []" in done.stdout


@pytest.mark.slow
def test_a_scalar_that_cannot_be_journaled_costs_the_record_never_the_training(
    kleio, script, workdir: Path
):
    name = script(
        """
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter("runs/odd")
        writer.add_scalar("loss", 1.0, 0)
        writer.add_scalar("loss", 2**70, 1)  # an int beyond 64 bits: no record holds it
        writer.add_scalar("loss", 3.0, 2)
        writer.close()
        print("TRAINING WENT ON")
        """
    )
    done = kleio.ok("python", name)
    assert "TRAINING WENT ON" in done.stdout
    assert "a TensorBoard scalar was not journaled" in done.stderr
    rows = _records(kleio.json("stats", trial_id(done.stderr)))
    assert rows == [{"loss": 1.0, "step": 0}, {"loss": 3.0, "step": 2}]
    assert json.dumps(rows)
