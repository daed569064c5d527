"""Detached trials: the daemon starts their supervisors, which then live on their own.

The supervisor is started in a session of its own, with the caller's
environment and working directory, its standard streams on /dev/null (the
trial's output goes to the journal).  The daemon holds none of the trial's
file descriptors and only reaps the supervisors it started; a restarted
daemon leaves them to init, and they re-register with it by themselves.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

from kleio_client.protocol import SupervisorSpec
from kleiod.errors import BadRequest, SpawnFailed

log = logging.getLogger(__name__)


class Spawner:
    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def spawn(self, spec: SupervisorSpec, environment: dict[str, Any]) -> int:
        """Start the supervisor of ``spec``; return its pid."""
        env = {str(k): str(v) for k, v in environment.items()}
        if not spec.argv:
            raise BadRequest("a detached trial needs a command")
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "kleio_supervisor", spec.to_json()],
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise SpawnFailed(
                f"could not start the supervisor of trial {spec.trial_id[:12]} in {spec.cwd}: {exc}"
            ) from None
        log.info(
            "started the supervisor (pid %s) of detached trial %s", child.pid, spec.trial_id[:12]
        )
        self._children.append(child)
        return child.pid

    def reap(self) -> None:
        """Collect the supervisors that ended (no zombies under a long-lived daemon)."""
        self._children = [c for c in self._children if c.poll() is None]
