"""Batch jobs on one node, as SLURM runs them: each job's processes in a cgroup of
their own, and the end of a job (scancel, time limit) signals every process in it.

A job here is a real cgroup of the v1 ``pids`` hierarchy where this test may make
one (as root on these machines); elsewhere it is the job's session plus the daemon
it started, which is what its cgroup would hold.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from kleio_runtime import lock
from tests.conftest import trial_id, wait_for_line
from tests.e2e.test_survival import STEADY, _assert_complete_journal, _wait_until_ended

CGROUPS = Path("/sys/fs/cgroup/pids")
JOIN = 'echo $$ > "$0/cgroup.procs" && exec "$@"'


class Job:
    """A batch job started on this node with one command, `kleio ...`."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.runtime = Path(env["XDG_RUNTIME_DIR"]) / "kleio"
        self.cgroup = _new_cgroup()
        self.daemon: int | None = None
        if self.cgroup is not None:
            argv = ["sh", "-c", JOIN, str(self.cgroup), *argv]
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def members(self) -> set[int]:
        if self.cgroup is not None:
            return {int(pid) for pid in (self.cgroup / "cgroup.procs").read_text().split()}
        session = {p.pid for p in psutil.process_iter() if _session(p.pid) == self.process.pid}
        return session | ({self.daemon} if self.daemon else set())

    def note_daemon(self) -> int:
        """The daemon this job's `kleio` started (no systemd to start it elsewhere)."""
        pid = lock.holder_pid(self.runtime)
        assert pid is not None
        self.daemon = pid
        return pid

    def signal(self, signum: int) -> None:
        """What scancel and `sbatch --signal` do: signal every process of the job, a
        SIGCONT first (a suspended step wakes to take it)."""
        for each in (signal.SIGCONT, signum):
            for pid in self.members():
                try:
                    os.kill(pid, each)
                except ProcessLookupError:
                    pass

    def end(self, grace: float = 30.0) -> None:
        """What the end of a job does: SIGTERM to every process in it, SIGKILL after grace
        (SLURM's KillWait is 30 s: time for a busy machine to record the trial's end)."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            self.signal(signum)
            deadline = time.monotonic() + grace
            while self.members() - _gone(self.members()) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.process.wait(timeout=60)

    def remove(self) -> None:
        deadline = time.monotonic() + 30
        while self.cgroup is not None:
            try:
                self.cgroup.rmdir()
                return
            except OSError:  # its last processes are still exiting
                assert time.monotonic() < deadline, f"{self.cgroup} stays busy"
                time.sleep(0.05)


def _new_cgroup() -> Path | None:
    path = CGROUPS / f"kleio-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _gone(pids: set[int]) -> set[int]:
    gone = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                gone.add(pid)
        except psutil.NoSuchProcess:
            gone.add(pid)
    return gone


@pytest.fixture
def jobs(kleio, isolated):
    started: list[Job] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Job:
        job = Job(kleio.argv(*args), kleio.cwd, {**os.environ, **(env or {})})
        started.append(job)
        return job

    yield start
    for job in started:
        job.end()  # whatever is left in it, a daemon that it started included
        job.remove()


WAITS = """
import os, signal, sys, time
from kleio_client import kleio_logger
print("pid", os.getpid(), "up", flush=True)
kleio_logger.log_statistic(step=0)
time.sleep(120)
"""


def test_the_trial_stays_in_the_jobs_tree_and_the_end_of_the_job_stops_it(kleio, script, jobs):
    job = jobs("python", script(WAITS))
    line = wait_for_line(job.process.stdout, " up")
    trial = int(line.split("pid ")[1].split()[0])
    kleio_pid = job.process.pid
    assert kleio_pid in {p.pid for p in psutil.Process(trial).parents()}
    assert trial in job.members()  # in the job's cgroup: its limits and its end apply
    job.end()
    assert _gone({trial}) == {trial}
    err = job.process.stderr.read().decode()
    tid = trial_id(err)
    info = _wait_until_ended(kleio, tid)
    logs = "".join(p.read_text() for p in job.runtime.glob("*.log"))
    assert info["status"] == "interrupted", (err, logs, info["history"], info["executions"])
    # It reached the trial, which died of it; the supervisor, signalled too, may take its
    # own SIGTERM only after the trial's death (on a loaded machine), and then records it
    # no more than any signal that comes after the end (a completed trial stays so).
    execution = info["executions"][-1]
    assert execution["exit_signal"] == "SIGTERM"
    assert execution["signals"] in ([], ["SIGTERM"])


@pytest.mark.slow
def test_the_end_of_the_job_that_started_the_daemon_leaves_other_jobs_trials_whole(
    kleio, script, jobs
):
    # run from a shell inside some systemd service (a CI runner, a web terminal)
    first = jobs("python", script(WAITS, name="first.py"), env={"INVOCATION_ID": "f00d"})
    wait_for_line(first.process.stdout, " up")
    daemon = first.note_daemon()
    assert daemon in first.members()  # no systemd here: the daemon is the first job's
    # The second trial holds at step 1000 until the first job has ended: it runs on
    # without the daemon, and its supervisor starts the next one.
    second = jobs("python", script(STEADY, name="second.py"), env={"HOLD_AT": "1000"})
    wait_for_line(second.process.stdout, "step 500")

    first.end()
    assert _gone({daemon}) == {daemon}
    (kleio.cwd / "go").touch()
    out, err = second.process.communicate(timeout=120)
    assert second.process.returncode == 0, err
    tid = trial_id(err.decode())
    assert _wait_until_ended(kleio, tid)["status"] == "completed"
    _assert_complete_journal(kleio, tid)
    if second.cgroup is not None:  # the daemon that took over is the second job's
        assert lock.holder_pid(first.runtime) in second.members()


REQUEUED = """
import io, os, signal, sys, time
from kleio_client import kleio_logger
stop = []
signal.signal(getattr(signal, sys.argv[1]), lambda *_: stop.append(True))
checkpoint = kleio_logger.load_artifact("checkpoint")
start = 0 if checkpoint is None else int(checkpoint.open().read()) + 1
print("from", start, "up", flush=True)
for epoch in range(start, 40):
    kleio_logger.log_statistic(epoch=epoch, node=os.environ["SLURMD_NODENAME"])
    time.sleep(0.05)
    if epoch == 10 and start == 0:  # the first job goes no further until it is signalled
        deadline = time.monotonic() + 300
        while not stop:
            assert time.monotonic() < deadline, "the job was never signalled"
            time.sleep(0.01)
    if stop:
        kleio_logger.log_artifact("checkpoint", io.BytesIO(b"%d" % epoch), epoch=epoch)
        sys.exit(0)
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("warning", ["SIGTERM", "SIGUSR1"])
def test_the_requeue_recipe_resumes_from_the_checkpoint_on_another_node(
    kleio, script, jobs, mongodb_server, tmp_path, warning
):
    """The job is signalled (scancel, or `--signal=USR1@90` before its time limit); the
    script checkpoints and exits 0; the trial is interrupted; the requeued job runs the
    same command on another node, whose own daemon shares the MongoDB, and resumes."""
    name = script(REQUEUED)
    database = f"{mongodb_server}/kleio_requeue_{uuid.uuid4().hex[:10]}"
    nodes = [
        {
            "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="k", dir="/tmp"),
            "XDG_DATA_HOME": str(tmp_path / node),
            "KLEIO_DATABASE": database,
            "SLURM_JOB_ID": "4242",
            "SLURMD_NODENAME": node,
        }
        for node in ("n01", "n02")
    ]

    first = jobs("python", name, warning, env=nodes[0])
    wait_for_line(first.process.stdout, "from 0 up")
    time.sleep(0.5)
    first.signal(getattr(signal, warning))
    _, err = first.process.communicate(timeout=60)
    assert first.process.returncode == 0, err.decode()
    first.end()  # the requeue ends the job: the daemon it started goes with it
    tid = trial_id(err.decode())

    second = jobs("python", name, warning, env=nodes[1])
    out, err = second.process.communicate(timeout=120)
    assert second.process.returncode == 0, err.decode()
    resumed = int(out.decode().split("from ")[1].split()[0])
    assert resumed > 0 and out.decode().endswith("done\n")
    info = json.loads(kleio.ok("info", tid, "--json", env={**os.environ, **nodes[1]}).stdout)
    assert [e["status"] for e in info["executions"]] == ["interrupted", "completed"]
    assert info["executions"][0]["signals"] == [warning]
    rows = json.loads(kleio.ok("stats", tid, "--json", env={**os.environ, **nodes[1]}).stdout)
    assert [r["epoch"] for r in rows] == list(range(40))
    assert {r["node"] for r in rows if r["epoch"] >= resumed} == {"n02"}
    second.end()
