"""Errors of the shared runtime, each with a stable wire code (see kleio_client.protocol).

    RuntimeSetupError               E_INTERNAL
    ├── ConfigError                 E_BAD_REQUEST   a setting that cannot be used
    └── DaemonAlreadyRunning        E_INTERNAL      another kleiod holds the lock

The daemon's controller turns them into error replies, the CLI into exit statuses,
each in its one place.
"""

from __future__ import annotations

from kleio_client import protocol


class RuntimeSetupError(Exception):
    code = protocol.E_INTERNAL


class ConfigError(RuntimeSetupError):
    code = protocol.E_BAD_REQUEST


class DaemonAlreadyRunning(RuntimeSetupError):
    pass
