"""The executions this daemon serves now, and how long a stop waits for them.

An execution counts from its supervisor's start report or heartbeat, for one lease,
until its end report.  The end of a batch job signals every process in it at
once, this daemon too when that job started it: the daemon then keeps serving
(at most ``DRAIN_SECONDS``, inside SLURM's default 30 s before SIGKILL) until
the trials stopped by the same signal have logged their last checkpoint and
reported their end.  Trials of other jobs are served meanwhile, and start a
daemon of their own once this one is gone.
"""

from __future__ import annotations

import time

DRAIN_SECONDS = 20.0


class RunningExecutions:
    def __init__(self, lease_seconds: float) -> None:
        self._lease = lease_seconds
        self._seen: dict[tuple[str, int], float] = {}

    def seen(self, trial_id: str, execution: int) -> None:
        self._seen[(trial_id, execution)] = time.monotonic()

    def ended(self, trial_id: str, execution: int) -> None:
        self._seen.pop((trial_id, execution), None)

    def count(self) -> int:
        """How many are running, forgetting those not heard of for a lease."""
        horizon = time.monotonic() - self._lease
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}
        return len(self._seen)
