"""kleiod: one per user, private sockets, status, autostart, stop, the journal's location."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from kleio_client import protocol
from tests.conftest import trial_id


def test_cli_starts_the_daemon_and_status_reports_it(kleio, isolated):
    down = kleio("daemon", "status", "--json")
    assert down.returncode == 5
    assert '"running": false' in down.stdout
    kleio.ok("daemon", "start")
    status = kleio.json("daemon", "status")
    assert status["running"] is True
    assert status["pid"] > 0
    assert status["version"]
    assert status["database"] == f"sqlite:///{isolated.journal}"
    assert status["uptime"] >= 0
    mode = stat.S_IMODE(isolated.kleio_runtime.stat().st_mode)
    assert mode == 0o700
    assert (isolated.kleio_runtime / "control.sock").exists()
    text = kleio.ok("daemon", "status").stdout
    assert text.splitlines()[0].split() == ["pid", str(status["pid"])]


def test_one_daemon_per_user_enforced_by_a_lock(kleio, isolated):
    kleio.ok("daemon", "start")
    pid = kleio.json("daemon", "status")["pid"]
    second = subprocess.run(
        [sys.executable, "-m", "kleiod"], capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 1
    assert f"kleiod is already running (pid {pid})" in second.stderr
    again = kleio.ok("daemon", "start")
    assert f"pid {pid}" in again.stdout
    assert kleio.json("daemon", "status")["pid"] == pid


def test_daemon_stop_and_restart_keeps_the_journal(kleio, script):
    name = script("from kleio_client import kleio_logger\nkleio_logger.log_statistic(x=1)\n")
    tid = trial_id(kleio("python", name).stderr)
    assert "kleiod stopped" in kleio.ok("daemon", "stop").stdout
    assert kleio("daemon", "status").returncode == 5
    assert "not running" in kleio.ok("daemon", "stop").stdout
    # any command starts it again
    assert kleio.json("stats", tid) == [{"x": 1}]


def test_kleiod_in_the_foreground_stops_on_sigterm(isolated):
    proc = subprocess.Popen([sys.executable, "-m", "kleiod"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (isolated.kleio_runtime / "control.sock").exists():
        assert proc.poll() is None, f"kleiod exited {proc.returncode}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "kleiod never made its control socket"
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    assert "kleiod stopped" in proc.stderr.read()


def test_kleio_database_overrides_the_journal_location(kleio, script, tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "mine.sqlite"
    monkeypatch.setenv("KLEIO_DATABASE", f"sqlite:///{target}")
    name = script("from kleio_client import kleio_logger\nkleio_logger.log_statistic(x=1)\n")
    assert kleio("python", name).returncode == 0
    assert kleio.json("daemon", "status")["database"] == f"sqlite:///{target}"
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT sum(count) FROM chunks WHERE kind='statistic'").fetchone()[0] == 1


def test_config_file_sets_the_database_and_env_wins(kleio, isolated, tmp_path, monkeypatch):
    from_file = tmp_path / "from-file.sqlite"
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text(f'database = "sqlite:///{from_file}"\n')
    kleio.ok("daemon", "start")
    assert kleio.json("daemon", "status")["database"] == f"sqlite:///{from_file}"
    kleio.ok("daemon", "stop")
    from_env = tmp_path / "from-env.sqlite"
    monkeypatch.setenv("KLEIO_DATABASE", f"sqlite:///{from_env}")
    kleio.ok("daemon", "start")
    assert kleio.json("daemon", "status")["database"] == f"sqlite:///{from_env}"


def test_malformed_messages_get_error_replies_and_the_daemon_keeps_serving(kleio, isolated):
    kleio.ok("daemon", "start")
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{isolated.kleio_runtime / 'control.sock'}")
    try:
        for frame in (
            b"\x00garbage",
            protocol.pack({"v": 99, "t": "request", "id": 1}),
            protocol.pack(protocol.request(2, "no-such-command", {})),
            protocol.pack(protocol.request(3, "info", {})),
        ):
            sock.send(frame)
            assert sock.poll(60_000), "no reply"
            reply = protocol.unpack(sock.recv())
            assert reply["ok"] is False
            assert reply["error"]["code"] in {"protocol_version", "bad_request"}
        sock.send(protocol.pack(protocol.request(4, "ping", {})))
        assert sock.poll(60_000), "no reply to ping"
        assert protocol.unpack(sock.recv())["ok"] is True
    finally:
        sock.close()
        context.term()
    assert kleio.json("daemon", "status")["refused_messages"] >= 4


def test_a_broken_config_file_is_one_clear_line(kleio, isolated):
    (isolated.config / "kleio").mkdir(parents=True)
    (isolated.config / "kleio" / "config.toml").write_text("database = [unclosed\n")
    done = kleio("ls")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "config.toml" in done.stderr and "Traceback" not in done.stderr


def test_a_daemon_serving_another_database_is_not_silently_used(kleio, tmp_path, monkeypatch):
    kleio.ok("daemon", "start")
    monkeypatch.setenv("KLEIO_DATABASE", f"sqlite:///{tmp_path / 'other.sqlite'}")
    done = kleio("ls")
    assert done.returncode == 5
    assert "kleio daemon stop" in done.stderr and "other.sqlite" in done.stderr
    kleio.ok("daemon", "stop")
    kleio.ok("ls")  # starts a daemon on the database asked for
    assert kleio.json("daemon", "status")["database"] == f"sqlite:///{tmp_path / 'other.sqlite'}"


def test_on_a_batch_node_a_private_runtime_dir_under_tmpdir_is_used(kleio, script):
    """No XDG_RUNTIME_DIR (or one that does not exist): the daemon and the CLI agree on a
    private 0700 directory under TMPDIR (the test's own, never the shared /tmp), and a
    trial runs."""
    tmp = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(tmp)
    runtime = tmp / f"kleio-{os.getuid()}"
    try:
        for missing in (None, str(tmp / "no-such-dir")):
            if missing:
                env["XDG_RUNTIME_DIR"] = missing
            assert Path(protocol.default_runtime_dir(env)) == runtime
            try:
                done = kleio("python", script("print('ran')\n"), "--x", str(missing), env=env)
                assert done.returncode == 0, done.stderr
                assert done.stdout == "ran\n"
                assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
                assert (runtime / "control.sock").exists()
            finally:
                kleio("daemon", "stop", env=env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_tmpdir_too_deep_for_socket_paths_falls_back_to_a_short_one(tmp_path):
    """A job's scratch TMPDIR would push socket paths past the 107-byte limit: the
    runtime directory is then /tmp/kleio-<uid>, the node's one for this user (its path
    only is checked: that directory may be a real daemon's)."""
    deep = tmp_path / ("scratch-" + "x" * 60) / ("job-" + "y" * 40)
    deep.mkdir(parents=True)
    runtime = protocol.default_runtime_dir({"TMPDIR": str(deep)})
    assert runtime == f"/tmp/kleio-{os.getuid()}"
    assert len(os.fsencode(os.path.join(runtime, "publish.sock"))) < 107
