"""What ran is captured, changes are refused or branched, secrets never stored."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import trial_id

SCRIPT = """
import os, sys
import model  # the trial runs model.py: a change to it is a code change
from kleio_client import kleio_logger
kleio_logger.log_statistic(execution=int(os.environ["KLEIO_EXECUTION"]))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(workdir: Path) -> Path:
    (workdir / "train.py").write_text(SCRIPT)
    (workdir / "model.py").write_text("LAYERS = 2\n")
    git(workdir, "init", "-q")
    git(workdir, "add", ".")
    git(workdir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return workdir


@pytest.fixture
def strict(isolated):
    """The strict code rule: commit, patch and untracked files, whatever the trial ran."""
    (isolated.config / "kleio").mkdir(parents=True, exist_ok=True)
    (isolated.config / "kleio" / "config.toml").write_text(
        '[fingerprint]\ncode = ["commit", "patch", "untracked"]\n'
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A directory on the trial's PYTHONPATH where the tests 'install' distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(path))

    def install(name: str, version: str) -> None:
        for old in path.glob(f"{name}-*.dist-info"):
            (old / "METADATA").unlink()
            old.rmdir()
        info = path / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Name: {name}\nVersion: {version}\n")

    return install


def test_info_shows_code_environment_and_configuration(kleio, repo, monkeypatch):
    (repo / "model.py").write_text("LAYERS = 3\n")  # uncommitted
    (repo / "helpers.py").write_text("X = 1\n")  # untracked source
    (repo / "cfg.json").write_text('{"lr": 0.1}')
    done = kleio(
        "python",
        "train.py",
        "data.csv",
        "--lr=0.1",
        "--epochs",
        "5",
        "--fast",
        "--tag",
        "a",
        "--tag",
        "b",
        "--config",
        "cfg.json",
    )
    assert done.returncode == 0, done.stderr
    info = kleio.json("info", trial_id(done.stderr))
    configuration = info["configuration"]
    assert configuration["positional"] == ["data.csv"]
    assert configuration["options"] == {
        "--lr": 0.1,
        "--epochs": 5,
        "--fast": True,
        "--tag": ["a", "b"],
        "--config": "cfg.json",
    }
    assert configuration["files"]["cfg.json"]["content"] == '{"lr": 0.1}'
    code = info["code"]
    assert code["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert code["dirty"] is True and code["patch_files"] == ["model.py"]
    assert "+LAYERS = 3" in code["patch"]
    assert [u["path"] for u in code["untracked"] if u["kind"] == "code"] == ["helpers.py"]
    environment = info["environment"]
    assert environment["python"]["version"]
    assert environment["packages"]["pyzmq"]["version"]
    assert environment["cpu"]["count"] == os.cpu_count()
    assert environment["os"] == "Linux" and environment["architecture"]
    assert "gpus" in environment
    text = kleio.ok("info", trial_id(done.stderr)).stdout
    for section in ("Configuration", "Code", "Environment"):
        assert f"\n{section}\n" in text
    assert "1 file: model.py" in text


def test_the_stored_patch_recovers_the_exact_code(kleio, repo, tmp_path):
    (repo / "model.py").write_text("LAYERS = 7\n# tuned\n")
    tid = trial_id(kleio("python", "train.py").stderr)
    code = kleio.json("info", tid)["code"]
    copy = tmp_path / "recovered"
    git(tmp_path, "clone", "-q", str(repo), str(copy))
    git(copy, "checkout", "-q", code["commit"])
    subprocess.run(["git", "apply"], input=code["patch"], text=True, cwd=copy, check=True)
    assert (copy / "model.py").read_text() == "LAYERS = 7\n# tuned\n"


def test_a_code_change_is_refused_then_branched_and_the_original_stays(kleio, repo):
    first = kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    original = trial_id(first.stderr)
    (repo / "model.py").write_text("LAYERS = 3\n")
    refused = kleio("python", "train.py")
    assert refused.returncode == 7
    assert "file model.py changed" in refused.stderr
    assert "--allow-code-change" in refused.stderr
    assert [t["id"] for t in kleio.json("ls")] == [original]
    branched = kleio("--allow-code-change", "python", "train.py")
    assert branched.returncode == 0, branched.stderr
    branch = trial_id(branched.stderr)
    assert branch != original
    assert f"branching trial {original[:12]}" in branched.stderr
    info = kleio.json("info", branch)
    assert info["parent"] == original and info["branch_kind"] == "change"
    assert info["branch_point"] is not None
    # same changed code again: the branch is selected (and it is completed)
    again = kleio("python", "train.py")
    assert again.returncode == 0 and f"trial {branch[:12]} is completed" in again.stderr
    # back to the original code: the original resumes
    git(repo, "checkout", "-q", "model.py")
    resumed = kleio("python", "train.py")
    assert resumed.returncode == 0, resumed.stderr
    assert trial_id(resumed.stderr) == original
    assert "resuming the broken trial as execution 2" in resumed.stderr


def test_a_new_commit_is_a_code_change_listing_the_commits(kleio, repo, strict):
    kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    before = git(repo, "rev-parse", "HEAD").strip()
    (repo / "model.py").write_text("LAYERS = 4\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "four")
    after = git(repo, "rev-parse", "HEAD").strip()
    refused = kleio("python", "train.py")
    assert refused.returncode == 7
    assert f"commit {before[:7]} -> {after[:7]}" in refused.stderr


def test_an_environment_change_lists_packages_and_needs_its_own_option(kleio, repo, site):
    site("fakepkg", "1.0")
    site("gone", "0.1")
    kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    site("fakepkg", "2.0")
    site("newpkg", "3.0")
    for path in (Path(os.environ["PYTHONPATH"])).glob("gone-*"):
        (path / "METADATA").unlink()
        path.rmdir()
    refused = kleio("python", "train.py")
    assert refused.returncode == 7
    assert "fakepkg 1.0 -> 2.0" in refused.stderr
    assert "newpkg 3.0 added" in refused.stderr
    assert "gone 0.1 removed" in refused.stderr
    assert "--allow-env-change" in refused.stderr
    assert kleio("--allow-code-change", "python", "train.py").returncode == 7
    branched = kleio("run", "--allow-env-change", "python", "train.py")
    assert branched.returncode == 0, branched.stderr
    assert "fakepkg 1.0 -> 2.0" in branched.stderr


def test_no_candidate_matching_lists_the_branches(kleio, repo):
    kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    (repo / "model.py").write_text("LAYERS = 3\n")
    kleio("--allow-any-change", "python", "train.py", env={**os.environ, "EXIT": "1"})
    (repo / "model.py").write_text("LAYERS = 4\n")
    refused = kleio("python", "train.py")
    assert refused.returncode == 7
    assert "none of its branches matches either" in refused.stderr
    assert refused.stderr.count("(broken)") == 2


def test_exec_and_run_resume_by_id_with_the_same_checks(kleio, repo, tmp_path):
    tid = trial_id(kleio("python", "train.py", env={**os.environ, "EXIT": "1"}).stderr)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = kleio("exec", tid[:8], cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the broken trial as execution 2" in resumed.stderr
    # execution 2 loaded no checkpoint: it restarted, superseding execution 1's record
    assert kleio.json("stats", tid) == [{"execution": 2}]
    (repo / "model.py").write_text("LAYERS = 9\n")
    assert kleio("run", tid[:8], cwd=elsewhere).returncode == 7


def test_same_repository_cloned_at_two_paths_matches_fingerprints(kleio, repo, tmp_path):
    first = kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    clone = tmp_path / "deep" / "other-clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    resumed = kleio("python", "train.py", cwd=clone)
    assert resumed.returncode == 0, resumed.stderr
    assert trial_id(resumed.stderr) == trial_id(first.stderr)


def test_diff_shows_configuration_code_and_environment(kleio, repo, site):
    site("fakepkg", "1.0")
    a = trial_id(kleio("python", "train.py", "--lr", "0.1").stderr)
    (repo / "model.py").write_text("LAYERS = 5\n")
    site("fakepkg", "1.1")
    b = trial_id(kleio("python", "train.py", "--lr", "0.2").stderr)
    text = kleio.ok("diff", a[:8], b[:8]).stdout
    assert "--lr 0.1 -> 0.2" in text
    assert "file model.py changed" in text
    assert "+LAYERS = 5" in text
    assert "fakepkg 1.0 -> 1.1" in text
    result = json.loads(kleio.ok("diff", a, b, "--json").stdout)
    assert result["environment"] == ["fakepkg 1.0 -> 1.1"]
    same = kleio.ok("diff", f"{a}:1", f"{a}:1").stdout
    assert same.count("no difference") == 3


def test_a_planted_secret_is_nowhere_in_the_journal(kleio, repo, isolated, monkeypatch):
    monkeypatch.setenv("MY_API_KEY", "planted-secret-1")
    monkeypatch.setenv("HF_TOKEN", "planted-secret-2")
    monkeypatch.setenv("DB_PASSWORD", "planted-secret-3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret-4")
    monkeypatch.setenv("MLFLOW_AUTH", "planted-secret-5")
    monkeypatch.setenv("SERVICE_CREDENTIALS", "planted-secret-6")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:planted-secret-7@db/x")
    monkeypatch.setenv("GIT_URL", "https://planted-secret-10@github.com/x/y")
    monkeypatch.setenv("HARMLESS", "visible-value")
    (repo / ".env").write_text("planted-secret-8")
    (repo / "server.key").write_text("planted-secret-9")
    done = kleio("python", "train.py")
    assert done.returncode == 0, done.stderr
    kleio.ok("daemon", "stop")  # everything on disk
    stored = b"".join(p.read_bytes() for p in isolated.data.rglob("*") if p.is_file())
    assert b"visible-value" in stored  # variables are recorded...
    assert b"planted-secret" not in stored  # ...but never a secret


def test_fingerprint_fields_are_configurable(kleio, repo, isolated):
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text(
        '[fingerprint]\ncode = ["commit"]\nenvironment = ["python"]\n'
    )
    kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    (repo / "model.py").write_text("LAYERS = 3\n")  # the patch no longer counts
    resumed = kleio("python", "train.py")
    assert resumed.returncode == 0, resumed.stderr
    (isolated.config / "kleio" / "config.toml").write_text('[fingerprint]\ncode = ["nope"]\n')
    bad = kleio("python", "train.py")
    assert bad.returncode == 2 and "unknown fields ['nope']" in bad.stderr


def test_files_the_trial_writes_are_not_code_changes_but_user_edits_are(kleio, repo, strict):
    (repo / "train.py").write_text(
        SCRIPT.replace(
            "import os, sys",
            "import os, sys, pathlib\n"
            "pathlib.Path('generated_cfg.py').write_text('X = %s' % os.environ['KLEIO_EXECUTION'])",
        )
    )
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "writes")
    kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    resumed = kleio("python", "train.py", env={**os.environ, "EXIT": "1"})
    assert resumed.returncode == 1, resumed.stderr  # ran: what it wrote is not a change
    time.sleep(0.1)
    (repo / "helper.py").write_text("Y = 1\n")  # the user's own new module, after the run
    refused = kleio("python", "train.py")
    assert refused.returncode == 7 and "untracked file helper.py added" in refused.stderr


def test_a_branch_checks_its_code_against_its_parent(kleio, repo):
    parent = trial_id(kleio("python", "train.py").stderr)
    (repo / "model.py").write_text("LAYERS = 8\n")
    refused = kleio("branch", parent, "--tag", "x")
    assert refused.returncode == 7 and "not branching it" in refused.stderr
    allowed = kleio("branch", parent, "--tag", "x", "--allow-code-change")
    assert allowed.returncode == 0, allowed.stderr


def test_the_same_branch_asked_with_other_spellings_is_one_branch(kleio, repo):
    parent = trial_id(kleio("python", "train.py").stderr)
    first = trial_id(kleio("branch", parent, "--lr=0.05", "--bs", "8").stderr)
    second = kleio("branch", parent, "--bs", "8", "--lr", "0.05")
    assert f"trial {first[:12]} is completed" in second.stderr


def test_exec_of_an_existing_change_branch_does_not_claim_to_branch(kleio, repo):
    original = trial_id(kleio("python", "train.py", env={**os.environ, "EXIT": "1"}).stderr)
    (repo / "model.py").write_text("LAYERS = 3\n")
    first = kleio("exec", original, "--allow-code-change", env={**os.environ, "EXIT": "1"})
    assert "branching trial" in first.stderr
    again = kleio("exec", original, "--allow-code-change")
    assert again.returncode == 0, again.stderr
    assert "branching trial" not in again.stderr
    assert trial_id(again.stderr) == trial_id(first.stderr)


@pytest.mark.slow
def test_a_completed_trial_in_another_environment_says_there_is_nothing_to_run(kleio, repo, site):
    site("fakepkg", "1.0")
    trial = trial_id(kleio.ok("python", "train.py").stderr)
    for number in range(8):  # as after `pip install -e ".[test]"`: packages added
        site(f"added{number}", f"{number}.0")
    site("fakepkg", "2.0")
    refused = kleio("python", "train.py")
    assert refused.returncode == 7
    assert refused.stderr.strip() == (
        f"kleio: trial {trial[:12]} completed in another environment (9 packages differ: "
        "added0 0.0 added, added1 1.0 added, added2 2.0 added, added3 3.0 added, "
        f"added4 4.0 added, ... (`kleio diff {trial[:12]}` shows all)); nothing to run. "
        "To run it again here, add --allow-env-change"
    )
    shown = kleio.ok("diff", trial[:12]).stdout
    assert f"kleio diff {trial[:12]} here" in shown
    for number in range(8):
        assert f"added{number} {number}.0 added" in shown
    assert "fakepkg 1.0 -> 2.0" in shown
    assert kleio.json("diff", trial)["environment"][-1] == "fakepkg 1.0 -> 2.0"
