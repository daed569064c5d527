"""Daemons of several machines sharing one MongoDB journal (a real server over the wire)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import first_to_exit, trial_id

TRAIN = """
import io, os, sys
from kleio_client import kleio_logger
ckpt = kleio_logger.load_artifact("ckpt")
start = 0 if ckpt is None else int(ckpt.open().read()) + 1
for epoch in range(start, 4):
    kleio_logger.log_statistic(epoch=epoch, host=os.environ["MACHINE"])
    kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
    if epoch == 1 and os.environ["MACHINE"] == "a":
        sys.exit(3)
print("machine", os.environ["MACHINE"], "from", start)
"""


@pytest.fixture
def machines(mongodb_server, tmp_path):
    """Two stand-ins for machines: their own runtime and data directories, one database."""
    database = f"{mongodb_server}/kleio_e2e_{uuid.uuid4().hex[:10]}"
    envs = {}
    for name in ("a", "b"):
        runtime = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
        envs[name] = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_DATA_HOME": str(tmp_path / f"data-{name}"),
            "KLEIO_DATABASE": database,
            "MACHINE": name,
        }
    yield envs
    for env in envs.values():
        subprocess.run(
            [sys.executable, "-m", "kleio_cli", "daemon", "stop"],
            env=env,
            capture_output=True,
            timeout=60,
        )


def _kleio(kleio, env, *args):
    return subprocess.run(
        kleio.argv(*args), cwd=kleio.cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_a_trial_broken_on_one_machine_resumes_on_another(kleio, script, machines):
    name = script(TRAIN)
    first = _kleio(kleio, machines["a"], "python", name)
    assert first.returncode == 3, first.stderr
    second = _kleio(kleio, machines["b"], "python", name)
    assert second.returncode == 0, second.stderr
    assert "machine b from 2" in second.stdout  # machine a's checkpoint, through GridFS
    tid = trial_id(second.stderr)
    assert trial_id(first.stderr) == tid
    for env in machines.values():
        listed = _kleio(kleio, env, "stats", tid, "--json")
        assert '"host": "a"' in listed.stdout and '"host": "b"' in listed.stdout
    status = _kleio(kleio, machines["a"], "daemon", "status", "--json")
    assert "mongodb://" in status.stdout


def test_the_same_command_on_two_machines_at_once_runs_once(kleio, script, machines):
    name = script("""
        import os, time
        deadline = time.monotonic() + 300
        while not os.path.exists("go"):  # runs until the other is refused
            assert time.monotonic() < deadline, "the test never released the trial"
            time.sleep(0.01)
    """)
    procs = [
        subprocess.Popen(
            kleio.argv("python", name),
            cwd=kleio.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for env in machines.values()
    ]
    first_to_exit(procs, timeout=120)
    (kleio.cwd / "go").touch()
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes == [0, 4]


def test_an_unreachable_mongodb_is_one_clear_line_without_credentials(
    kleio, script, isolated, monkeypatch
):
    monkeypatch.setenv("KLEIO_DATABASE", "mongodb://alice:s3cret@127.0.0.1:1/lab")
    done = kleio("python", script("print('never runs')\n"))
    assert done.returncode == 5
    assert "mongodb://alice:***@127.0.0.1:1/lab" in done.stderr
    assert "check that the server runs" in done.stderr
    assert "never runs" not in done.stdout
    log = (isolated.kleio_runtime / "kleiod.log").read_text()
    assert "s3cret" not in done.stderr + done.stdout + log


def _journal(kleio, env: dict[str, str]) -> dict[str, object]:
    """Everything a user reads of every trial, keyed by id."""

    def read(*args: str) -> object:
        import json

        done = _kleio(kleio, env, *args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    out: dict[str, object] = {}
    for trial in read("ls"):  # type: ignore[attr-defined]
        tid = trial["id"]
        info = read("info", tid)
        out[tid] = {
            "trial": {
                k: info[k]
                for k in (
                    "status",
                    "command",
                    "parent",
                    "branch_kind",
                    "statistics",
                    "inherited_records",
                    "code",
                )
            },
            "executions": [
                (e["status"], e["exit_code"], e["restarted"], e["resume_point"] is not None)
                for e in info["executions"]
            ],
            "history": [(h["execution"], h["status"]) for h in info["history"]],
            "stats": read("stats", tid),
            "all": [
                (r["execution"], r["superseded"], r["record"])
                for r in read("stats", tid, "--all-executions")
            ],
            "artifacts": [
                (a["filename"], a["sha256"], a["metadata"], a["execution"])
                for a in read("artifacts", tid)
            ],
        }
    return out


@pytest.mark.slow
def test_a_journal_moves_sqlite_to_mongodb_and_back_losslessly(kleio, script, machines, tmp_path):
    local = {**machines["a"], "KLEIO_DATABASE": f"sqlite:///{tmp_path / 'one.sqlite'}"}
    back = {**machines["b"], "KLEIO_DATABASE": f"sqlite:///{tmp_path / 'two.sqlite'}"}
    lab = machines["a"]
    name = script(TRAIN)
    assert _kleio(kleio, local, "python", name).returncode == 3
    parent = trial_id(_kleio(kleio, local, "python", name).stderr)
    branched = _kleio(kleio, local, "branch", parent, "--timestamp", "epoch=1", "--x", "1")
    assert branched.returncode == 0, branched.stderr
    before = _journal(kleio, local)
    export = tmp_path / "lab.kleio"
    assert _kleio(kleio, local, "export", "-o", str(export)).returncode == 0
    _kleio(kleio, local, "daemon", "stop")
    other = script(
        "from kleio_client import kleio_logger\nkleio_logger.log_statistic(x=1)\n", name="other.py"
    )
    assert _kleio(kleio, lab, "python", other).returncode == 0  # positions differ there
    imported = _kleio(kleio, lab, "import", str(export))
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 trials" in imported.stderr
    assert {k: v for k, v in _journal(kleio, lab).items() if k in before} == before
    again = tmp_path / "again.kleio"
    assert _kleio(kleio, lab, "export", *before, "-o", str(again)).returncode == 0
    _kleio(kleio, lab, "daemon", "stop")
    assert _kleio(kleio, back, "import", str(again)).returncode == 0
    assert _journal(kleio, back) == before
    twice = _kleio(kleio, back, "import", str(again))
    assert "imported 0 trials" in twice.stderr and "2 already here" in twice.stderr
    got = _kleio(
        kleio,
        back,
        "artifact",
        "get",
        parent,
        "ckpt",
        "--where",
        "epoch=3",
        "-o",
        str(tmp_path / "c3"),
    )
    assert got.returncode == 0 and (tmp_path / "c3").read_bytes() == b"3"


@pytest.mark.slow
@pytest.mark.parametrize("hold_bytes", [None, "1"], ids=["in-memory", "spilled-to-disk"])
def test_the_server_restarting_mid_run_loses_and_doubles_nothing(
    kleio, script, tmp_path, monkeypatch, hold_bytes
):
    """The daemon keeps what the database cannot take, in memory up to KLEIO_HOLD_BYTES,
    then in a spill file on disk, and writes all of it, once, when the server is back."""
    import signal
    import socket
    import time

    import pymongo

    from tests.conftest import wait_for_line

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "server"
    data.mkdir()

    def start() -> subprocess.Popen:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data / "data"),
                "--log-level",
                "WARNING",
            ],
            cwd=data,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                pymongo.MongoClient(
                    f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=200
                ).admin.command("ping")
                return server
            except pymongo.errors.PyMongoError:
                assert time.monotonic() < deadline, "SecantusDB did not start"
                time.sleep(0.1)

    server = start()
    monkeypatch.setenv("KLEIO_DATABASE", f"mongodb://127.0.0.1:{port}/restarts")
    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "60")
    if hold_bytes:
        monkeypatch.setenv("KLEIO_HOLD_BYTES", hold_bytes)
    name = script("""
        import os, time
        from kleio_client import kleio_logger
        for step in range(400):
            kleio_logger.log_statistic(step=step)
            if step == 50:
                print("ready", flush=True)
                deadline = time.monotonic() + 300
                while not os.path.exists("away"):  # the rest once the database is away
                    assert time.monotonic() < deadline, "the test never released the trial"
                    time.sleep(0.01)
            time.sleep(0.015)
    """)
    try:
        proc = kleio.popen("python", name)
        wait_for_line(proc.stdout, "ready", timeout=60)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        (kleio.cwd / "away").touch()  # records keep coming while the database is away
        kept = "records_spilled" if hold_bytes else "records_held"
        deadline = time.monotonic() + 60
        while not (status := kleio.json("daemon", "status"))[kept]:
            assert time.monotonic() < deadline, f"no record counted in {kept}: {status}"
            time.sleep(0.1)
        if hold_bytes:
            assert status["records_spilled"] > 0
        else:
            assert status["records_held"] > 0 and status["records_spilled"] == 0
        server = start()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        steps = [r["step"] for r in kleio.json("stats", trial_id(err.decode()))]
        assert steps == list(range(400))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_machine_killed_mid_run_is_lost_then_resumed_elsewhere(kleio, script, machines):
    import signal
    import time

    import psutil

    from kleio_runtime import lock
    from tests.conftest import wait_for_line

    for env in machines.values():
        env["KLEIO_LEASE_SECONDS"] = "1"
    name = script("""
        import io, os, time
        from kleio_client import kleio_logger
        ckpt = kleio_logger.load_artifact("ckpt")
        start = 0 if ckpt is None else int(ckpt.open().read()) + 1
        for epoch in range(start, 6):
            kleio_logger.log_statistic(epoch=epoch, machine=os.environ["MACHINE"])
            kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
            if epoch == 2 and os.environ["MACHINE"] == "a":
                print("ready", flush=True)
                time.sleep(300)  # it dies while computing, once what it logged is committed
    """)
    subprocess.run(
        kleio.argv("daemon", "start"),
        env=machines["a"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc = subprocess.Popen(
        kleio.argv("python", name),
        cwd=kleio.cwd,
        env=machines["a"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_line(proc.stdout, "ready", timeout=60)
    deadline = time.monotonic() + 60
    while True:  # epoch 2 and its checkpoint are in the database, as machine b reads it
        listed = _kleio(kleio, machines["b"], "ls", "--json")
        trials = json.loads(listed.stdout) if listed.returncode == 0 else []
        if trials:
            tid = trials[0]["id"]
            stats = _kleio(kleio, machines["b"], "stats", tid, "--json")
            saved = _kleio(kleio, machines["b"], "artifacts", tid, "--json")
            if (
                stats.returncode == 0
                and saved.returncode == 0
                and [r["epoch"] for r in json.loads(stats.stdout)] == [0, 1, 2]
                and 2 in {a["metadata"]["epoch"] for a in json.loads(saved.stdout)}
            ):
                break
        assert time.monotonic() < deadline, "epoch 2 never reached the database"
        time.sleep(0.1)
    daemon = lock.holder_pid(Path(machines["a"]["XDG_RUNTIME_DIR"]) / "kleio")
    cli = psutil.Process(proc.pid)
    for victim in [psutil.Process(daemon), cli, *cli.children(recursive=True)]:
        victim.send_signal(signal.SIGKILL)  # the whole machine goes down
    proc.wait(timeout=60)
    tid = None
    deadline = time.monotonic() + 60
    while True:  # machine b's daemon sweeps the expired lease
        listed = _kleio(kleio, machines["b"], "ls", "--json")
        trials = json.loads(listed.stdout) if listed.returncode == 0 else []
        if trials and trials[0]["status"] == "lost":
            tid = trials[0]["id"]
            break
        assert time.monotonic() < deadline, "never lost: " + listed.stdout + listed.stderr
        time.sleep(0.3)
    resumed = _kleio(kleio, machines["b"], "python", name)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the lost trial" in resumed.stderr
    everything = _kleio(kleio, machines["b"], "stats", tid, "--all-executions").stdout
    stats = json.loads(_kleio(kleio, machines["b"], "stats", tid, "--json").stdout)
    assert [(r["epoch"], r["machine"]) for r in stats] == [
        (0, "a"),
        (1, "a"),
        (2, "a"),
        (3, "b"),
        (4, "b"),
        (5, "b"),
    ], everything


@pytest.mark.slow
def test_a_later_branch_of_an_imported_trial_imports_onto_it(kleio, script, machines, tmp_path):
    local = {**machines["a"], "KLEIO_DATABASE": f"sqlite:///{tmp_path / 'one.sqlite'}"}
    lab = machines["b"]
    name = script(TRAIN)
    other = script(
        "from kleio_client import kleio_logger\nkleio_logger.log_statistic(x=1)\n", name="other.py"
    )
    assert _kleio(kleio, lab, "python", other).returncode == 0  # positions differ there
    parent = trial_id(_kleio(kleio, {**local, "MACHINE": "b"}, "python", name).stderr)
    first = tmp_path / "first.kleio"
    assert _kleio(kleio, local, "export", "-o", str(first)).returncode == 0
    assert _kleio(kleio, lab, "import", str(first)).returncode == 0
    child = trial_id(
        _kleio(
            kleio, {**local, "MACHINE": "b"}, "branch", parent, "--timestamp", "epoch=2", "--y", "1"
        ).stderr
    )
    second = tmp_path / "second.kleio"
    assert _kleio(kleio, local, "export", child, "-o", str(second)).returncode == 0
    imported = _kleio(kleio, lab, "import", str(second))
    assert "imported 1 trials" in imported.stderr and "1 already here" in imported.stderr
    assert _journal(kleio, lab)[child] == _journal(kleio, local)[child]


def test_tail_follows_a_trial_running_on_another_machine(kleio, script, machines):
    """Machine b's daemon never sees a's live chunks: it follows a's trial by reading the
    shared database, with the same lines as `cat` and an end when the trial ends."""
    name = script("""
import sys, time
for i in range(300):
    print(f"line {i}", flush=True)
    if i % 3 == 0:
        print(f"warn {i}", file=sys.stderr, flush=True)
    time.sleep(0.005)
""")
    run = subprocess.Popen(
        kleio.argv("python", name),
        cwd=kleio.cwd,
        env=machines["a"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (listed := _kleio(kleio, machines["b"], "ls", "--json")).stdout.strip(" \n[]"):
        assert time.monotonic() < deadline, listed.stderr
        time.sleep(0.1)
    tid = json.loads(listed.stdout)[0]["id"]
    follow = _kleio(kleio, machines["b"], "tail", "-f", "-n", "all", tid)
    assert run.wait(timeout=60) == 0
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == "".join(f"line {i}\n" for i in range(300))
    assert follow.stderr == "".join(f"warn {i}\n" for i in range(0, 300, 3))


NODE = """
import os, pathlib, time
from kleio_client import kleio_logger
rank = int(os.environ["SLURM_PROCID"])
pathlib.Path(f"up.{rank}").touch()
deadline = time.monotonic() + 60
while not pathlib.Path(f"up.{1 - rank}").exists():  # both nodes run at once
    assert time.monotonic() < deadline, "the other node never came"
    time.sleep(0.01)
for step in range(100):
    kleio_logger.log_statistic(step=step)
print("rank", rank, "execution", os.environ["KLEIO_EXECUTION"], flush=True)
"""


def test_one_srun_step_on_two_nodes_is_one_execution_of_one_trial(kleio, script, machines):
    """`srun -N2 kleio torchrun ...`: each node's kleio names the same trial; the first
    reserves it, the other joins that execution, and the trial ends once both did."""
    name = script(NODE)
    procs = []
    for rank, env in enumerate(machines.values()):
        step = {
            "SLURM_JOB_ID": "77",
            "SLURM_STEP_ID": "0",
            "SLURM_STEP_NUM_TASKS": "2",
            "SLURM_PROCID": str(rank),
        }
        procs.append(
            subprocess.Popen(
                kleio.argv("python", name),
                cwd=kleio.cwd,
                env={**env, **step},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("joining execution 1" in err for _, err in outputs) == 1
    assert sorted(out for out, _ in outputs) == ["rank 0 execution 1\n", "rank 1 execution 1\n"]
    tid = trial_id(outputs[0][1])
    info = json.loads(_kleio(kleio, machines["a"], "info", tid, "--json").stdout)
    assert info["status"] == "completed"
    assert [(e["number"], e["status"]) for e in info["executions"]] == [(1, "completed")]
    rows = json.loads(_kleio(kleio, machines["b"], "stats", tid, "--json").stdout)
    assert sorted((r["rank"], r["step"]) for r in rows) == [
        (rank, step) for rank in (0, 1) for step in range(100)
    ]
