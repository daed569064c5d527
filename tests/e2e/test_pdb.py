"""`kleio pdb`: the trial's command under the debugger, on the terminal, in a scratch trial."""

from __future__ import annotations

import os
import select
import subprocess
import time

from tests.conftest import trial_id

SCRIPT = """
import io, sys
from kleio_client import kleio_logger
ckpt = kleio_logger.load_artifact("ckpt")
start = 0 if ckpt is None else int(ckpt.open().read()) + 1
print("start", start, "lr", sys.argv[-1], flush=True)
for epoch in range(start, 3):
    kleio_logger.log_statistic(epoch=epoch)
    kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
secret = 40 + start
if start > 0:
    kleio_logger.log_statistic(debugged=True)  # a scratch record: not in the trial's history
    print("debug output", flush=True)
    raise RuntimeError("boom")
"""


class Terminal:
    """A command on a pseudo-terminal, driven like a person at the keyboard."""

    def __init__(self, argv: list[str], cwd) -> None:
        self.leader, follower = os.openpty()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, start_new_session=True
        )
        os.close(follower)
        self.screen = b""

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} on the screen:\n{self.screen.decode()}"
            if select.select([self.leader], [], [], remaining)[0]:
                try:
                    self.screen += os.read(self.leader, 65536)
                except OSError:
                    raise AssertionError(
                        f"the terminal closed before {text!r}:\n{self.screen.decode()}"
                    ) from None

    def type(self, line: str) -> None:
        self.screen = b""
        os.write(self.leader, line.encode() + b"\n")

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.leader)
        return code


def test_pdb_debugs_the_trial_without_touching_its_history(kleio, script):
    name = script(SCRIPT)
    tid = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    before = kleio.json("stats", tid)
    terminal = Terminal(kleio.argv("pdb", tid[:8]), kleio.cwd)
    terminal.expect(b"(Pdb)")  # stopped at the first line
    terminal.type("p __name__")
    terminal.expect(b"'__main__'")
    terminal.type("continue")
    # The trial's checkpoint is found (the scratch trial reads its history), the
    # configuration is the trial's, and the uncaught exception enters post-mortem.
    terminal.expect(b"start 3 lr 0.1")
    terminal.expect(b"RuntimeError: boom")
    terminal.expect(b"(Pdb)")
    terminal.type("p secret")
    terminal.expect(b"43")
    terminal.type("quit")
    terminal.expect(b"(Pdb)")  # pdb restarts the program after a post-mortem
    terminal.type("quit")
    assert terminal.close() == 0
    assert kleio.json("stats", tid) == before
    assert "debug output" not in kleio.ok("cat", tid).stdout
    info = kleio.json("info", tid)
    assert len(info["executions"]) == 1 and info["status"] == "completed"
    assert [t["id"] for t in kleio.json("ls")] == [tid]  # scratch trials are not listed


def test_pdb_refuses_a_command_that_is_not_python(kleio, script):
    tid = trial_id(kleio.ok("sh", "-c", "echo hi").stderr)
    done = kleio("pdb", tid)
    assert done.returncode == 2
    assert "debugs Python scripts" in done.stderr


def test_pdb_of_an_unknown_trial_is_one_clear_line(kleio):
    done = kleio("pdb", "abcdef12")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
