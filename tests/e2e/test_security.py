"""Another local user cannot reach the daemon; secrets never reach the journal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid

import psutil
import pytest

from tests.conftest import trial_id


def test_runtime_directory_and_sockets_are_private(kleio, isolated):
    kleio.ok("daemon", "start")
    runtime = isolated.kleio_runtime
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    for name in ("control.sock", "ingest.sock", "publish.sock"):
        mode = stat.S_IMODE((runtime / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
    assert stat.S_IMODE(isolated.journal.stat().st_mode) & 0o077 == 0
    daemon = psutil.Process(kleio.json("daemon", "status")["pid"])
    assert [
        c for c in daemon.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ] == []  # no TCP listener


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root; run as root to check isolation")
    name = f"kt{uuid.uuid4().hex[:8]}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/bin/false", name],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a user here: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


PROBE = """
import json, os, socket, sys
runtime = sys.argv[1]
result = {}
try:
    os.listdir(runtime)
    result["listdir"] = "allowed"
except PermissionError:
    result["listdir"] = "denied"
for name in ("control.sock", "ingest.sock", "publish.sock"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(os.path.join(runtime, name))
            result[name] = "connected"
        except PermissionError:
            result[name] = "denied"
print(json.dumps(result))
"""


def test_another_user_cannot_connect(kleio, isolated, other_user):
    """A second local user can neither list the runtime directory nor connect to any of
    the daemon's sockets (the same probe run as the daemon's user connects)."""
    import pwd
    import shutil

    # The other user cannot run an interpreter under root's home: a system one.
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 for the second user to run")
    kleio.ok("daemon", "start")
    account = pwd.getpwnam(other_user)
    probe = [python, "-c", PROBE, str(isolated.kleio_runtime)]
    mine = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    assert json.loads(mine.stdout) == {
        "listdir": "allowed",
        "control.sock": "connected",
        "ingest.sock": "connected",
        "publish.sock": "connected",
    }
    theirs = subprocess.run(
        probe,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin"},
    )
    assert theirs.returncode == 0, theirs.stderr
    assert json.loads(theirs.stdout) == {
        "listdir": "denied",
        "control.sock": "denied",
        "ingest.sock": "denied",
        "publish.sock": "denied",
    }


@pytest.mark.slow
def test_secret_options_of_the_command_line_are_never_stored(kleio, script, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "tok-123")
    name = script("""
        import sys
        print("got", sys.argv[1:])
    """)
    argv = [
        "python",
        name,
        "--password",
        "hunter2",
        "--db-pass=pw-456",
        "--lr",
        "0.1",
        "--db",
        "mongodb://alice:s3cret@host/db",
        "--passes",
        "3",
    ]
    done = kleio.ok(*argv)
    assert "hunter2" in done.stdout  # the script itself gets the real values
    tid = trial_id(done.stderr)
    shown = "\n".join(
        [
            kleio.ok("ls", "--json").stdout,
            kleio.ok("info", tid, "--json").stdout,
            kleio.ok("ls").stdout,
            kleio.ok("info", tid).stdout,
        ]
    )
    for secret in ("hunter2", "pw-456", "s3cret", "tok-123"):
        assert secret not in shown
    command = kleio.json("info", tid)["argv"]
    assert command == [
        "python",
        name,
        "--password",
        "***",
        "--db-pass=***",
        "--lr",
        "0.1",
        "--db",
        "mongodb://alice:***@host/db",
        "--passes",
        "3",
    ]
    # The same command with another password is the same trial.
    again = kleio(
        "python",
        name,
        "--password",
        "other",
        "--db-pass=x",
        "--lr",
        "0.1",
        "--db",
        "mongodb://alice:zz@host/db",
        "--passes",
        "3",
    )
    assert "is completed" in again.stderr
    refused = kleio("exec", tid)
    assert refused.returncode == 2 and "run the command again" in refused.stderr


def test_the_journal_file_never_holds_a_secret(kleio, script, isolated, monkeypatch):
    monkeypatch.setenv("MY_SECRET_KEY", "k-789")
    name = script("print('ok')\n")
    kleio.ok("python", name, "--api-key", "ak-000")
    kleio.ok("daemon", "stop")
    raw = isolated.journal.read_bytes()
    wal = isolated.journal.with_name("journal.sqlite-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert b"k-789" not in raw and b"ak-000" not in raw
