"""Trial identity: same command, same trial; independent of the checkout's location."""

from __future__ import annotations

import subprocess

from kleio_cli import identity
from tests.conftest import trial_id


def test_equivalent_spellings_of_an_option_are_one_trial(tmp_path):
    (tmp_path / "train.py").write_text("")
    a = identity.compute(["python", "train.py", "--lr", "0.1"], str(tmp_path))
    b = identity.compute(["python3", "train.py", "--lr=0.1"], str(tmp_path))
    c = identity.compute(["/opt/venv/bin/python3.11", "train.py", "--lr", "0.1"], str(tmp_path))
    assert a.id == b.id == c.id
    assert identity.compute(["python", "train.py", "--lr", "0.2"], str(tmp_path)).id != a.id


def test_arguments_order_and_positionals_matter(tmp_path):
    one = identity.compute(["python", "t.py", "a", "b"], str(tmp_path))
    two = identity.compute(["python", "t.py", "b", "a"], str(tmp_path))
    assert one.id != two.id


def test_parse_command_understands_python_options():
    cmd = identity.parse_command(["python", "-u", "-W", "ignore", "-m", "pkg.train", "--lr", "1"])
    assert (cmd.interpreter, cmd.module, cmd.args) == ("python", "pkg.train", ["--lr", "1"])
    assert cmd.interpreter_options == ["-u", "-W", "ignore"]
    code = identity.parse_command(["python3", "-c", "print(1)", "x"])
    assert (code.code, code.args) == ("print(1)", ["x"])
    other = identity.parse_command(["./run.sh", "--fast"])
    assert (other.script, other.args) == ("./run.sh", ["--fast"])


def test_torchrun_and_its_module_form_are_one_trial_apart_from_the_plain_script(tmp_path):
    (tmp_path / "train.py").write_text("")
    at = str(tmp_path)
    launched = identity.compute(["torchrun", "--nproc_per_node", "2", "train.py", "--lr", "1"], at)
    module = identity.compute(
        ["python", "-m", "torch.distributed.run", "--nproc_per_node=2", "train.py", "--lr=1"], at
    )
    assert launched.id == module.id
    assert launched.canonical["script"] == "train.py"
    assert launched.canonical["args"] == ["--lr", "1"]
    assert identity.compute(["python", "train.py", "--lr", "1"], at).id != launched.id
    four = identity.compute(["torchrun", "--nproc_per_node", "4", "train.py", "--lr", "1"], at)
    assert four.id != launched.id
    requeued = identity.compute(
        [
            "torchrun",
            "--nproc-per-node=2",
            "--rdzv-endpoint",
            "n07:29500",
            "--rdzv-id",
            "8812",
            "--max-restarts",
            "3",
            "train.py",
            "--lr",
            "1",
        ],
        at,
    )  # where and how to meet change from job to job
    assert requeued.id == launched.id
    cmd = identity.parse_command(["torchrun", "--standalone", "--nnodes=1", "-m", "pkg.t", "-x"])
    assert (cmd.script, cmd.module, cmd.args) == (None, "pkg.t", ["-x"])
    assert identity.parse_command(["torchrun", "-t3", "train.py"]).script == "train.py"
    attached = identity.compute(
        ["torchrun", "-t3", "--nproc_per_node", "2", "train.py", "--lr", "1"], at
    )
    assert attached.id == launched.id
    real = identity.parse_command(
        [
            "torchrun",
            "--nnodes=1:2",
            "--nproc-per-node",
            "4",
            "--rdzv-endpoint",
            "h:29500",
            "--max-restarts",
            "3",
            "--virtual-local-rank",
            "--no-python",
            "train.py",
            "--lr",
        ]
    )
    assert (real.script, real.args) == ("train.py", ["--lr"])


def test_config_file_content_is_part_of_identity(tmp_path):
    (tmp_path / "cfg.yaml").write_text("lr: 0.1\n")
    before = identity.compute(["python", "t.py", "--config", "cfg.yaml"], str(tmp_path))
    (tmp_path / "cfg.yaml").write_text("lr: 0.2\n")
    after = identity.compute(["python", "t.py", "--config=cfg.yaml"], str(tmp_path))
    assert before.id != after.id
    assert list(after.canonical["config_files"]) == ["cfg.yaml"]


def test_remote_normalisation():
    expected = "github.com/lab/proj"
    assert identity.normalize_remote("git@github.com:lab/proj.git") == expected
    assert identity.normalize_remote("https://user:tok@GitHub.com/lab/proj.git") == expected
    assert identity.normalize_remote("ssh://git@github.com/lab/proj") == expected


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_two_clones_at_different_paths_name_the_same_trial(kleio, tmp_path):
    origin = tmp_path / "origin"
    (origin / "src").mkdir(parents=True)
    (origin / "src" / "train.py").write_text("print('trained')\n")
    _git(origin, "init", "-q")
    _git(origin, "add", ".")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    for clone in ("a", "b/deeper"):
        _git(tmp_path, "clone", "-q", str(origin), str(tmp_path / clone))
    first = kleio("python", "src/train.py", "--lr", "0.1", cwd=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    second = kleio("python", "train.py", "--lr=0.1", cwd=tmp_path / "b" / "deeper" / "src")
    # a different working directory relative to the root is a different command...
    assert trial_id(second.stderr) != trial_id(first.stderr)
    third = kleio("python", "src/train.py", "--lr=0.1", cwd=tmp_path / "b" / "deeper")
    # ...while the same command in another clone is the same, completed, trial
    assert third.returncode == 0
    assert f"trial {trial_id(first.stderr)[:12]} is completed" in third.stderr
