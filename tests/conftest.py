"""Isolation and real processes for every test.

Every test gets its own XDG_RUNTIME_DIR (short, so ipc socket paths stay
under the Unix limit), XDG_DATA_HOME and XDG_CONFIG_HOME, and no inherited
KLEIO_* variable.  ``kleio`` runs the real CLI in a subprocess; the daemon
it starts is a real process, stopped (or killed) at teardown.
"""

from __future__ import annotations

import compileall
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tests send SIGINT to the commands they start, which must take it as a terminal's Ctrl-C:
# a suite started with SIGINT ignored (`(pytest &)` in a script) would pass that on to them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Races are run this many times each: once in the suite; `.ci/under-load` runs them three
# times, where an unlucky interleaving is likelier to show.
ROUNDS = range(int(os.environ.get("KLEIO_TEST_ROUNDS", "1")))

PACKAGES = ("kleio", "kleio_cli", "kleio_client", "kleio_runtime", "kleio_supervisor", "kleiod")


def pytest_configure(config: pytest.Config) -> None:
    """Compile Kleio's modules once, before the workers start.

    An editable install has no bytecode, and under PYTHONDONTWRITEBYTECODE (set on the CI
    machines) every CLI, daemon, supervisor and trial process the tests start would compile
    each of its Kleio modules from source again: a fifth of a trial's CPU time.
    """
    if hasattr(config, "workerinput"):
        return
    for package in PACKAGES:
        compileall.compile_dir(str(REPO / package), quiet=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: the workers hand out tests in this order, and a slow test
    that starts last keeps the whole suite waiting for it alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@dataclass
class Env:
    home: Path
    runtime: Path
    data: Path
    config: Path

    @property
    def kleio_runtime(self) -> Path:
        return self.runtime / "kleio"

    @property
    def journal(self) -> Path:
        return self.data / "kleio" / "journal.sqlite"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    runtime = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    env = Env(tmp_path, runtime, tmp_path / "data", tmp_path / "config")
    for name in list(os.environ):
        if name.startswith("KLEIO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_DATA_HOME", str(env.data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.config))
    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "20")
    yield env
    _stop_daemon(env.kleio_runtime)
    shutil.rmtree(runtime, ignore_errors=True)


def _stop_daemon(runtime_dir: Path) -> None:
    from kleio_runtime import lock

    if not lock.is_held(runtime_dir):
        return
    pid = lock.holder_pid(runtime_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)  # on purpose: no supervisor left by a failed test revives it
    deadline = time.monotonic() + 30
    while lock.is_held(runtime_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    if lock.is_held(runtime_dir):
        os.kill(pid, signal.SIGKILL)


def signal_daemon(runtime_dir: Path, signum: int = signal.SIGKILL) -> int:
    """Signal the daemon of ``runtime_dir`` and wait until it has let its lock go; its pid."""
    from kleio_runtime import lock

    pid = lock.holder_pid(runtime_dir)
    assert pid is not None, "no daemon holds the lock"
    os.kill(pid, signum)
    deadline = time.monotonic() + 60  # a graceful stop commits what it holds: slow when busy
    while lock.is_held(runtime_dir):
        assert time.monotonic() < deadline, f"kleiod (pid {pid}) kept its lock"
        time.sleep(0.02)
    return pid


class Kleio:
    """Runs the real ``kleio`` command in a subprocess."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kleio_cli", *args]

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=cwd or self.cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
        )

    def popen(self, *args: str, cwd: Path | None = None, **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args),
            cwd=cwd or self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kwargs,
        )  # type: ignore[call-overload]

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        done = self(*args, **kwargs)  # type: ignore[arg-type]
        assert done.returncode == 0, f"kleio {' '.join(args)} failed:\n{done.stderr}"
        return done

    def json(self, *args: str) -> object:
        import json

        return json.loads(self.ok(*args, "--json").stdout)


MONGODB_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[str]:
    """The base URL of a MongoDB-wire server for this session."""
    named = os.environ.get("KLEIO_TEST_MONGODB_URL")
    if named:
        yield named.rstrip("/")
        return
    import pymongo

    directory = Path(tempfile.mkdtemp(prefix="kleio-secantus-"))
    port = _free_port()
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
            str(directory / "data"),
            "--log-level",
            "WARNING",
        ],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"mongodb://127.0.0.1:{port}"
    deadline = time.monotonic() + MONGODB_START_TIMEOUT
    while True:
        try:
            pymongo.MongoClient(url, serverSelectionTimeoutMS=200).admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "SecantusDB did not start"
            time.sleep(0.1)
    yield url
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def kleio(workdir: Path) -> Kleio:
    return Kleio(workdir)


@pytest.fixture
def script(workdir: Path):
    """Write a Python script into the working directory; return its name."""

    def write(body: str, name: str = "train.py") -> str:
        (workdir / name).write_text(textwrap.dedent(body))
        return name

    return write


def trial_id(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("trial reserved with id: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no trial id in:\n{stderr}")


def first_to_exit(procs: list[subprocess.Popen], timeout: float = 60) -> subprocess.Popen:
    """Wait until one of ``procs`` has exited; return it (the one refused, of two racing)."""
    deadline = time.monotonic() + timeout
    while not (ended := [p for p in procs if p.poll() is not None]):
        assert time.monotonic() < deadline, f"none of {len(procs)} processes exited"
        time.sleep(0.02)
    return ended[0]


def wait_for_line(stream, text: str, timeout: float = 60) -> str:
    """Read ``stream`` (bytes) until a line containing ``text``; return what was read."""
    import selectors

    seen = b""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {text!r}; saw {seen!r}"
        if selector.select(remaining):
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"stream closed before {text!r}; saw {seen!r}"
            seen += chunk
    selector.close()
    return seen.decode(errors="replace")
