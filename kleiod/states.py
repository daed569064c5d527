"""Trial statuses (named in kleio_client.protocol) and their transitions."""

from __future__ import annotations

from kleio_client import protocol

ALL = protocol.STATUSES
NEW, RUNNING, COMPLETED, INTERRUPTED, BROKEN, LOST = ALL
RESUMABLE = frozenset({NEW, INTERRUPTED, BROKEN, LOST})
# SIGUSR1/2 are recorded only inside a SLURM job, where they warn of preemption.
INTERRUPTING_SIGNALS = frozenset({"SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2"})
_SIGINT, _SIGTERM = 2, 15  # the same on every Linux architecture
# A process dead of SIGINT or SIGTERM (as waitpid's exit code: negative).
INTERRUPTED_DEATHS = frozenset({-_SIGINT, -_SIGTERM})
# What a shell or a launcher exits with once its child died of SIGINT or SIGTERM.
INTERRUPTED_EXITS = frozenset({128 + _SIGINT, 128 + _SIGTERM})


def final_status(exit_code: int, signals: list[str], received: bool = False) -> str:
    """The status an execution ends in.  Interrupted: whenever its supervisor forwarded or
    received SIGINT or SIGTERM (inside a SLURM job, SIGUSR1 or SIGUSR2), whatever the exit
    code; when the trial's process died of SIGINT or SIGTERM, whoever sent it; when it
    exited 130 or 143 and a process of the trial had ``received`` one.  Otherwise exit 0
    is completed, anything else (death by SIGKILL included) broken."""
    if INTERRUPTING_SIGNALS.intersection(signals) or exit_code in INTERRUPTED_DEATHS:
        return INTERRUPTED
    if received and exit_code in INTERRUPTED_EXITS:
        return INTERRUPTED
    return COMPLETED if exit_code == 0 else BROKEN


# What an execution of several processes (the nodes of one launch) ends in, the first
# that applies: one broke; one was interrupted; all completed.
_PRECEDENCE = (BROKEN, INTERRUPTED, COMPLETED)


def combined(statuses: list[str]) -> str:
    """The status of an execution whose processes ended in ``statuses``."""
    for status in _PRECEDENCE:
        if status in statuses:
            return status
    return statuses[-1] if statuses else BROKEN


def combined_exit(exit_codes: list[int | None]) -> int | None:
    """The exit code of such an execution: the first that is not 0, else 0."""
    failed = [code for code in exit_codes if code]
    return failed[0] if failed else (exit_codes[0] if exit_codes else None)
