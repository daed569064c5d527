"""The code a resume compares is the code the trial ran: its script and the repository's
modules it imported, by content.  A commit or an edit elsewhere in the repository resumes
the trial; an edit to a file it ran is refused, naming the file.  A trial that reported
nothing (not Python) falls back to commit and patch, and so does every trial under the
strict setting."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from kleio_client import protocol
from kleiod.storage.sqlite import SQLiteStorage
from tests.conftest import trial_id

TRAIN = """
import os, sys
import model
from kleio_client import kleio_logger

kleio_logger.log_statistic(execution=int(os.environ["KLEIO_EXECUTION"]), layers=model.LAYERS)
if os.environ.get("LATE"):
    import late  # imported after the first record: reported at exit
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", ".")
    git(repo, "commit", "-qm", message)


@pytest.fixture
def repo(workdir: Path) -> Path:
    (workdir / "train.py").write_text(TRAIN)
    (workdir / "model.py").write_text("LAYERS = 2\n")
    (workdir / "late.py").write_text("WHEN = 'late'\n")
    (workdir / "notes.md").write_text("# notes\n")
    (workdir / "other_experiment.py").write_text("print('another experiment')\n")
    git(workdir, "init", "-q")
    commit_all(workdir, "init")
    return workdir


def failing(**more: str) -> dict[str, str]:
    return {**os.environ, "EXIT": "1", **more}


def touch_elsewhere(repo: Path) -> None:
    """Change what the trial never ran: committed, and then uncommitted too."""
    (repo / "notes.md").write_text("# notes\nsomething learned\n")
    (repo / "other_experiment.py").write_text("print('another experiment, changed')\n")
    commit_all(repo, "unrelated")
    (repo / "other_experiment.py").write_text("print('edited, not committed')\n")


def test_a_commit_elsewhere_in_the_repository_resumes_the_trial(kleio, repo):
    first = kleio("python", "train.py", env=failing())
    assert first.returncode == 1, first.stderr
    touch_elsewhere(repo)
    again = kleio("python", "train.py")
    assert again.returncode == 0, again.stderr
    assert trial_id(again.stderr) == trial_id(first.stderr)
    assert "resuming the broken trial as execution 2" in again.stderr


def test_an_edit_to_an_imported_module_is_refused_naming_it(kleio, repo):
    first = trial_id(kleio("python", "train.py", env=failing()).stderr)
    (repo / "model.py").write_text("LAYERS = 3\n")
    refused = kleio("python", "train.py")
    assert refused.returncode == 7, refused.stderr
    assert "  code: file model.py changed" in refused.stderr
    assert "train.py" not in refused.stderr.split("not resuming it:")[1].split("run again")[0]
    branched = kleio("--allow-code-change", "python", "train.py")
    assert branched.returncode == 0, branched.stderr
    assert f"branching trial {first[:12]}" in branched.stderr
    assert "file model.py changed" in branched.stderr
    assert trial_id(branched.stderr) != first
    # the original still resumes with the code it ran
    (repo / "model.py").write_text("LAYERS = 2\n")
    resumed = kleio("python", "train.py")
    assert resumed.returncode == 0, resumed.stderr
    assert trial_id(resumed.stderr) == first


def test_the_strict_setting_refuses_a_commit_elsewhere(kleio, repo, isolated):
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text(
        '[fingerprint]\ncode = ["commit", "patch", "untracked"]\n'
    )
    first = trial_id(kleio("python", "train.py", env=failing()).stderr)
    assert sorted(kleio.json("info", first)["code"]["imported"]) == ["model.py", "train.py"]
    touch_elsewhere(repo)
    refused = kleio("python", "train.py")  # what it ran is the same: the rule refuses
    assert refused.returncode == 7, refused.stderr
    assert "  code: commit " in refused.stderr
    assert "  code: uncommitted changes in other_experiment.py" in refused.stderr


def test_a_trial_that_reported_nothing_falls_back_to_commit_and_patch(kleio, repo):
    shell = kleio("sh", "-c", "exit 1")  # not Python: nothing reported
    assert shell.returncode == 1, shell.stderr
    python = kleio("python", "train.py", env=failing())
    assert python.returncode == 1, python.stderr
    info = kleio.json("info", trial_id(shell.stderr))
    assert "imported" not in info["code"]
    text = kleio.ok("info", trial_id(shell.stderr)).stdout
    assert "not reported: a resume compares commit, patch and untracked files" in text
    (repo / "notes.md").write_text("# notes, edited\n")
    refused = kleio("sh", "-c", "exit 1")
    assert refused.returncode == 7, refused.stderr
    assert "  code: uncommitted changes in notes.md" in refused.stderr
    commit_all(repo, "notes")
    refused = kleio("sh", "-c", "exit 1")
    assert refused.returncode == 7, refused.stderr
    assert "  code: commit " in refused.stderr
    resumed = kleio("python", "train.py")  # the Python trial reported what it ran
    assert resumed.returncode == 0, resumed.stderr
    assert trial_id(resumed.stderr) == trial_id(python.stderr)


def test_info_lists_the_files_the_trial_ran(kleio, repo):
    tid = trial_id(kleio.ok("python", "train.py").stderr)
    code = kleio.json("info", tid)["code"]
    assert sorted(code["imported"]) == ["model.py", "train.py"]
    assert all(len(digest) == 64 for digest in code["imported"].values())
    [line] = [line for line in kleio.ok("info", tid).stdout.splitlines() if "2 files" in line]
    assert line.split() == ["ran", "2", "files:", "model.py,", "train.py"]


def test_a_detached_trial_reports_the_files_it_ran_too(kleio, repo):
    tid = kleio.ok("-d", "python", "train.py").stdout.strip()
    deadline = time.monotonic() + 60
    while (info := kleio.json("info", tid))["status"] == "running":
        assert time.monotonic() < deadline, "the detached trial did not end"
        time.sleep(0.1)
    assert info["status"] == "completed", info
    assert sorted(info["code"]["imported"]) == ["model.py", "train.py"]


def test_a_module_imported_after_the_first_record_is_reported_at_exit(kleio, repo):
    tid = trial_id(kleio("python", "train.py", env=failing(LATE="1")).stderr)
    assert sorted(kleio.json("info", tid)["code"]["imported"]) == [
        "late.py",
        "model.py",
        "train.py",
    ]
    (repo / "late.py").write_text("WHEN = 'later'\n")
    refused = kleio("python", "train.py", env=failing(LATE="1"))
    assert refused.returncode == 7, refused.stderr
    assert "  code: file late.py changed" in refused.stderr


def test_diff_shows_the_code_changes_in_the_files_they_ran(kleio, repo):
    a = trial_id(kleio.ok("python", "train.py", "--lr", "0.1").stderr)
    (repo / "model.py").write_text("LAYERS = 5\n")
    (repo / "notes.md").write_text("# notes, edited\n")
    b = trial_id(kleio.ok("python", "train.py", "--lr", "0.2").stderr)
    text = kleio.ok("diff", a[:8], b[:8]).stdout
    assert "code (in the files they ran: model.py, train.py):" in text
    assert "file model.py changed" in text
    assert "+LAYERS = 5" in text
    assert "notes.md" not in text  # edited, but neither ran it


FORKS = """
import os, sys
import model
from kleio_client import kleio_logger

kleio_logger.log_statistic(who="parent")
children = []
for i in range(20):
    pid = os.fork()
    if pid == 0:
        if i == 0:
            import child_only  # the one file a child imports that its parent did not
        kleio_logger.log_statistic(who="child", i=i)
        sys.exit(0)  # atexit runs in the child: its report, then its flush
    children.append(pid)
for pid in children:
    assert os.waitpid(pid, 0)[1] == 0
"""


def test_forked_children_report_only_what_they_imported_themselves(kleio, repo, isolated):
    (repo / "forks.py").write_text(FORKS)
    (repo / "child_only.py").write_text("X = 1\n")
    commit_all(repo, "forks")
    done = kleio("python", "forks.py", timeout=120)
    assert done.returncode == 0, done.stderr
    tid = trial_id(done.stderr)
    storage = SQLiteStorage(isolated.journal)
    try:
        reports = storage.read_records(tid, [protocol.IMPORTED])
    finally:
        storage.close()
    reported = Counter(path for r in reports for path in r["body"]["files"])
    assert reported == {"forks.py": 1, "model.py": 1, "child_only.py": 1}
    assert len(kleio.json("stats", tid)) == 21
