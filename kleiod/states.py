"""Trial statuses and their transitions; standard library only."""

from __future__ import annotations

NEW = "new"
RUNNING = "running"
COMPLETED = "completed"
INTERRUPTED = "interrupted"
BROKEN = "broken"
LOST = "lost"

ALL = (NEW, RUNNING, COMPLETED, INTERRUPTED, BROKEN, LOST)
RESUMABLE = frozenset({NEW, INTERRUPTED, BROKEN, LOST})
INTERRUPTING_SIGNALS = frozenset({"SIGINT", "SIGTERM"})


def final_status(exit_code: int, signals: list[str]) -> str:
    """The status an execution ends in: interrupted whenever SIGINT/SIGTERM was seen."""
    if INTERRUPTING_SIGNALS.intersection(signals):
        return INTERRUPTED
    return COMPLETED if exit_code == 0 else BROKEN
