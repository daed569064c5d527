"""Carriage-return rewrites collapsed: a progress bar's thousands of updates become its last.

A terminal shows a line rewritten after ``\\r`` as its final state; `kleio
cat` shows the journal the same way, one stream at a time (a partial line
waits for its end or for the end of the output).  ``\\r\\n`` ends a line as
``\\n`` does.
"""

from __future__ import annotations


class Collapser:
    def __init__(self) -> None:
        self._line = b""

    def feed(self, data: bytes) -> bytes:
        """What can be shown of ``data``: the lines it completes, each in its final state."""
        *complete, self._line = (self._line + data).split(b"\n")
        return b"".join(final(line) + b"\n" for line in complete)

    def finish(self) -> bytes:
        """The last partial line, in its final state."""
        line, self._line = self._line, b""
        return final(line)


def final(line: bytes) -> bytes:
    """The text a terminal shows after the line's last carriage return."""
    if line.endswith(b"\r"):
        line = line.rstrip(b"\r")
    return line.rsplit(b"\r", 1)[-1]
