"""The trial's stdout and stderr: a pseudo-terminal where the caller's stream is a terminal.

In the foreground, a script's progress bars and colours render as with
plain ``python`` only if its streams are terminals: each stream whose
counterpart in the caller is a terminal gets a pseudo-terminal of its own
(two, so stdout and stderr stay apart in the journal), with the caller's
window size and output processing off (the journal keeps the bytes the
script wrote; the caller's terminal adds the carriage returns).  Otherwise,
and always for a detached trial, a pipe.  The pseudo-terminals are not the
trial's controlling terminal: stdin stays the caller's, and the terminal's
signals reach the trial through `kleio` and the supervisor.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import struct
import termios
from dataclasses import dataclass

STREAMS = (("stdout", 1), ("stderr", 2))


@dataclass(frozen=True)
class Output:
    name: str  # "stdout" or "stderr"
    theirs: int  # the trial's end
    ours: int  # the supervisor reads here
    caller: int  # the caller's stream, echoed to in the foreground
    terminal: bool


def open_outputs(foreground: bool) -> list[Output]:
    outputs = []
    for name, caller in STREAMS:
        if foreground and os.isatty(caller):
            ours, theirs = pty.openpty()
            _output_as_written(theirs)
            copy_window_size(caller, theirs)
            outputs.append(Output(name, theirs, ours, caller, True))
        else:
            ours, theirs = os.pipe()
            outputs.append(Output(name, theirs, ours, caller, False))
    return outputs


def _output_as_written(fd: int) -> None:
    attributes = termios.tcgetattr(fd)
    attributes[1] &= ~termios.OPOST  # no "\n" -> "\r\n": the journal keeps what was written
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def copy_window_size(source: int, target: int) -> None:
    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # the caller's terminal went away: the last size stays


def read(fd: int, size: int) -> bytes:
    """Read, treating a pseudo-terminal whose other end closed (EIO) as the end."""
    try:
        return os.read(fd, size)
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise
