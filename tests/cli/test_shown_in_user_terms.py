"""What `kleio info`, `cat`, `branch` and `ls --where` show in the user's own terms:
positions as the records there, exit statuses as a shell shows them, each execution's
output under a line of its own, resources, and configuration files' values.  Real trials."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import trial_id

CHECKPOINTED = """
    import sys
    from kleio_client import kleio_logger
    checkpoint = kleio_logger.load_artifact("ck.json")
    start = 0 if checkpoint is None else checkpoint.metadata["epoch"] + 1
    print(f"starting at epoch {start}")
    for epoch in range(start, 7):
        kleio_logger.log_statistic(epoch=epoch, step=epoch * 100, loss=1 / (epoch + 1))
        kleio_logger.log_artifact("ck.json", b"{}", epoch=epoch)
        if epoch == 2 and checkpoint is None:
            raise SystemExit("diverged at epoch 2")
    print("done")
"""


def test_resume_and_branch_points_are_shown_as_the_records_there(kleio, script):
    name = script(CHECKPOINTED)
    trial = trial_id(kleio("python", name, "--lr", "0.1").stderr)
    kleio.ok("python", name, "--lr", "0.1")
    info = kleio.ok("info", trial).stdout
    executions = info.split("Executions\n")[1].split("\n\n")[0].splitlines()
    assert executions[0].split()[-1] == "RESUMED"
    assert executions[1].endswith("from scratch")
    assert executions[2].endswith("after epoch=2 (ck.json)")
    detail = kleio.json("info", trial)
    assert isinstance(detail["executions"][1]["resume_point"], int)  # the number stays
    assert detail["executions"][1]["resumed_after"]["epoch"] == 2

    branched = kleio.ok("branch", trial, "--timestamp", "epoch=100", "--lr", "0.2")
    assert (
        "kleio: no record has epoch=100; branching at epoch=6, the greatest below it"
        in branched.stderr
    )
    child = trial_id(branched.stderr)
    shown = kleio.ok("info", child).stdout
    assert "branch      branch after epoch=6 (ck.json);" in shown
    exact = kleio.ok("branch", trial, "--timestamp", "step=300", "--lr", "0.3")
    assert "no record has" not in exact.stderr
    assert "branch after epoch=3 step=300 loss=0.25;" in kleio.ok(
        "info", trial_id(exact.stderr)
    ).stdout.replace("  ", " ")


def test_cat_says_where_each_execution_starts(kleio, script):
    name = script(CHECKPOINTED)
    trial = trial_id(kleio("python", name).stderr)
    kleio.ok("python", name)
    assert kleio.ok("cat", trial, "--stream", "stdout").stdout.splitlines() == [
        "--- execution 1 ---",
        "starting at epoch 0",
        "--- execution 2: resumed after epoch=2 (ck.json) ---",
        "starting at epoch 3",
        "done",
    ]
    raw = kleio.ok("cat", trial, "--stream", "stdout", "--raw").stdout
    assert "---" not in raw  # the bytes as written


def test_an_execution_killed_by_a_signal_shows_its_exit_status_as_a_shell_does(kleio, script):
    name = script("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    trial = trial_id(kleio("python", name).stderr)
    row = kleio.ok("info", trial).stdout.split("Executions\n")[1].splitlines()[1]
    assert "137 (SIGKILL)" in row and "died of SIGKILL" in row
    execution = kleio.json("info", trial)["executions"][0]
    assert execution["exit_code"] == -9 and execution["exit"] == "137 (SIGKILL)"


def test_info_lists_the_resources_a_trial_read(kleio, script, workdir: Path):
    (workdir / "data.csv").write_text("1,2\n")
    name = script(
        "from kleio_client import kleio_logger\n"
        "kleio_logger.log_resource('data.csv', split='train')\n"
    )
    trial = trial_id(kleio.ok("python", name).stderr)
    section = kleio.ok("info", trial).stdout.split("Resources\n")[1].splitlines()
    assert section[0].split() == ["PATH", "KIND", "BYTES", "SHA256", "EXEC", "METADATA"]
    assert section[1].split()[:3] == [str(workdir / "data.csv"), "file", "4"]
    assert section[1].split()[-1] == "split=train"
    [resource] = kleio.json("info", trial)["resources"]
    assert resource["path"] == str(workdir / "data.csv") and resource["metadata"] == {
        "split": "train"
    }


def test_ls_where_reads_the_values_of_configuration_files(kleio, script, workdir: Path):
    (workdir / "small.yaml").write_text("optimizer:\n  lr: 0.01\n  name: adam\nepochs: 5\n")
    (workdir / "large.json").write_text('{"optimizer": {"lr": 0.5}, "epochs": 9}')
    name = script("print('ok')\n")
    small = trial_id(kleio.ok("python", name, "--config", "small.yaml").stderr)
    large = trial_id(kleio.ok("python", name, "--config", "large.json", "--epochs", "2").stderr)

    def listed(*where: str) -> list[str]:
        return [t["id"] for t in kleio.json("ls", *[f"--where={w}" for w in where])]

    assert listed("optimizer.lr<0.1") == [small]
    assert listed("optimizer.name=adam") == [small]
    assert sorted(listed("optimizer.lr>0")) == sorted([small, large])
    assert listed("epochs=2") == [large]  # the command line's option wins over the file's
