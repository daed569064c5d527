"""kleiod as a systemd service: readiness over NOTIFY_SOCKET, `kleio daemon install-service`,
and the CLI starting the installed unit rather than a daemon of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kleio_cli import service
from tests.conftest import REPO

NOTIFY_TIMEOUT = 60.0
ENABLE = "systemctl --user daemon-reload && systemctl --user enable --now kleiod"


@contextmanager
def _notify_socket(address: str) -> Iterator[socket.socket]:
    """A datagram socket bound where NOTIFY_SOCKET=``address`` points, as systemd binds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("\0" + address[1:] if address.startswith("@") else address)
        sock.settimeout(0.2)
        yield sock
    finally:
        sock.close()


def _kleiod(notify_socket: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "kleiod"],
            stderr=stderr,
            env=dict(os.environ, NOTIFY_SOCKET=notify_socket),
        )


def _receive(sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> dict[str, str]:
    """The next notification, as a dict of its KEY=value lines."""
    deadline = time.monotonic() + NOTIFY_TIMEOUT
    exited = False
    while True:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            assert not exited, f"kleiod exited {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"no notification: {log.read_text()}"
            exited = proc.poll() is not None  # one more read: it may have sent, then exited
            continue
        return dict(line.split("=", 1) for line in message.splitlines())


def _ready_status_stopping(kleio, address: str, log: Path) -> None:
    with _notify_socket(address) as sock:
        proc = _kleiod(address, log)
        try:
            ready = _receive(sock, proc, log)
            assert ready["READY"] == "1"
            assert ready["MAINPID"] == str(proc.pid)
            assert ready["STATUS"].startswith("serving sqlite:///")
            assert kleio.json("daemon", "status")["pid"] == proc.pid
            proc.terminate()
            assert _receive(sock, proc, log)["STOPPING"] == "1"
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_kleiod_notifies_ready_once_serving_then_stopping_on_sigterm(kleio, tmp_path):
    directory = tempfile.mkdtemp(prefix="kn", dir="/tmp")  # short: a socket path
    try:
        _ready_status_stopping(kleio, os.path.join(directory, "notify"), tmp_path / "kleiod.log")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_kleiod_notifies_an_abstract_socket(kleio, tmp_path):
    _ready_status_stopping(kleio, f"@kleio-test-{uuid.uuid4().hex}", tmp_path / "kleiod.log")


def test_a_notify_socket_nobody_reads_is_logged_never_fatal(kleio, isolated, tmp_path):
    log = tmp_path / "kleiod.log"
    proc = _kleiod(f"/tmp/kleio-test-nobody-{uuid.uuid4().hex}", log)
    try:
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while "cannot notify NOTIFY_SOCKET=" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert kleio.json("daemon", "status")["pid"] == proc.pid
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "kleiod stopped" in log.read_text()


def _unit(isolated) -> Path:
    return isolated.config / "systemd" / "user" / "kleiod.service"


def _exec_start(unit: Path) -> str:
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return lines[0].removeprefix("ExecStart=")


def test_install_service_writes_the_unit_with_an_absolute_exec_start(kleio, isolated):
    done = kleio.ok("daemon", "install-service")
    unit = _unit(isolated)
    assert f"wrote {unit}" in done.stdout
    assert ENABLE in done.stdout
    text = unit.read_text()
    for setting in ("Type=notify", "NotifyAccess=main", "Restart=on-failure", "KillMode=process"):
        assert setting in text.splitlines()
    beside = Path(sys.executable).parent / "kleiod"
    expected = str(beside) if os.access(beside, os.X_OK) else f"{sys.executable} -m kleiod"
    assert _exec_start(unit) == expected
    assert Path(expected.split()[0]).is_absolute()
    again = kleio.ok("daemon", "install-service")  # the same unit: nothing to replace
    assert "already installed" in again.stdout and ENABLE in again.stdout
    assert unit.read_text() == text
    assert not isolated.kleio_runtime.exists(), "install-service started a daemon"


def test_install_service_replaces_a_different_unit_only_with_force(kleio, isolated):
    unit = _unit(isolated)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/opt/mine/kleiod\n")
    refused = kleio("daemon", "install-service")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert str(unit) in refused.stderr and "--force" in refused.stderr
    assert unit.read_text() == "[Service]\nExecStart=/opt/mine/kleiod\n"
    replaced = kleio.ok("daemon", "install-service", "--force")
    assert f"replaced {unit}" in replaced.stdout and ENABLE in replaced.stdout
    assert "Type=notify" in unit.read_text()


def test_the_installed_unit_passes_systemd_analyze_verify(kleio, isolated):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    kleio.ok("daemon", "install-service")
    unit = _unit(isolated)
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stdout + done.stderr  # no warning about the unit


def _settings(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and not line.startswith("ExecStart=")
    ]


def test_the_unit_in_the_source_tree_is_the_one_installed_but_for_exec_start():
    shipped = (REPO / "systemd" / "kleiod.service").read_text()
    assert _settings(shipped) == _settings(service.unit_text(["/usr/bin/env", "kleiod"]))


def test_an_installed_unit_systemctl_cannot_start_falls_back_in_one_line(
    kleio, isolated, monkeypatch
):
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed on this machine")
    kleio.ok("daemon", "install-service")
    # The isolated XDG_RUNTIME_DIR holds no user bus: systemctl --user fails for real, and
    # never reaches this user's own service manager.
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    done = kleio("daemon", "start")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1
    assert "`systemctl --user start kleiod` failed" in done.stderr
    assert "starting kleiod directly" in done.stderr
    assert kleio.json("daemon", "status")["running"] is True
