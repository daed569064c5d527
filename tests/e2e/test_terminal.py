"""Foreground output behaves as with plain python: a terminal for the script's streams,
tqdm bars and colours rendered, the journal collapsing the bar's rewrites."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import time

from kleio_cli.carriage import Collapser
from tests.conftest import trial_id

SCRIPT = """
import os, sys
from tqdm import tqdm
print("stdout tty", sys.stdout.isatty(), "stderr tty", sys.stderr.isatty(), flush=True)
print("columns", os.get_terminal_size(1).columns, flush=True)
print("\\x1b[31mred\\x1b[0m", flush=True)
for _ in tqdm(range(300), mininterval=0, miniters=1, ncols=60):
    pass
print("done", flush=True)
"""


def _run_in_terminal(kleio, *args: str, columns: int = 123) -> tuple[int, bytes]:
    """Run `kleio ARGS` with a pseudo-terminal as its stdin, stdout and stderr."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        kleio.argv(*args),
        cwd=kleio.cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            break
        if not data:
            break
        seen += data
    os.close(leader)
    return proc.wait(timeout=60), seen


def test_a_tqdm_bar_renders_in_the_terminal_and_collapses_in_the_journal(kleio, script):
    name = script(SCRIPT)
    code, screen = _run_in_terminal(kleio, "python", name)
    assert code == 0, screen
    assert b"stdout tty True stderr tty True" in screen
    assert b"columns 123" in screen
    assert b"\x1b[31mred\x1b[0m" in screen
    assert screen.count(b"\r") > 100  # the bar was redrawn in place, not line by line
    assert b"300/300" in screen
    tid = trial_id(screen.decode(errors="replace").replace("\r", ""))
    raw = _cat(kleio, "--raw", "--stream", "stderr", tid)
    assert raw.count(b"\r") > 100  # the journal keeps every byte the script wrote
    collapsed = _cat(kleio, "--stream", "stderr", tid)
    assert b"\r" not in collapsed
    (bar,) = collapsed.splitlines()
    assert "100%" in bar.decode() and b"300/300" in bar
    stdout = _cat(kleio, "--stream", "stdout", tid)
    assert stdout.startswith(b"stdout tty True stderr tty True\ncolumns 123\n")
    assert b"\r\n" not in stdout  # the journal has the script's "\n", not the terminal's


def _cat(kleio, *args: str) -> bytes:
    """`kleio cat` as bytes: a text-mode read would turn carriage returns into newlines."""
    done = subprocess.run(kleio.argv("cat", *args), cwd=kleio.cwd, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_a_terminal_the_script_sees_pipes(kleio, script):
    name = script("""
        import sys
        print("stdout tty", sys.stdout.isatty(), "stderr tty", sys.stderr.isatty())
    """)
    done = kleio.ok("python", name)
    assert done.stdout == "stdout tty False stderr tty False\n"


def test_carriage_returns_collapse_to_what_a_terminal_shows():
    collapser = Collapser()
    shown = collapser.feed(b"epoch 1\n 10%\r 20%\r")
    shown += collapser.feed(b" 30%\rdone\r\nnext")
    shown += collapser.finish()
    assert shown == b"epoch 1\ndone\nnext"
