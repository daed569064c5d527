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
# SIGUSR1/2 are recorded only inside a SLURM job, where they warn of preemption.
INTERRUPTING_SIGNALS = frozenset({"SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2"})


def final_status(exit_code: int, signals: list[str]) -> str:
    """The status an execution ends in: interrupted whenever SIGINT/SIGTERM was seen."""
    if INTERRUPTING_SIGNALS.intersection(signals):
        return INTERRUPTED
    return COMPLETED if exit_code == 0 else BROKEN
