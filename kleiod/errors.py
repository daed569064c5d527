"""Errors of the daemon, each with a stable wire code (see kleio_client.protocol).

    KleiodError                     E_INTERNAL
    ├── ConfigError                 E_BAD_REQUEST   a setting that cannot be used
    ├── BadRequest                  E_BAD_REQUEST   a malformed or unknown request
    ├── TrialNotFound               E_NOT_FOUND     no trial has that id or prefix
    ├── AmbiguousId                 E_AMBIGUOUS     a prefix names several trials
    ├── ReservationRefused                          the trial cannot run now
    │   ├── AlreadyRunning          E_ALREADY_RUNNING
    │   ├── TrialCompleted          E_COMPLETED
    │   └── ChangeRefused           E_CHANGED       code or environment changed, not allowed
    ├── StorageError                E_STORAGE       the database failed (translated at the seam)
    │   └── ArtifactMissing         E_STORAGE       no bytes are stored under an artifact's hash
    └── SpawnFailed                 E_INTERNAL      a detached trial's supervisor did not start

ConfigError is also kleio_runtime's (a setting the shared resolver refuses), so that one
``except`` takes both.  The controller turns these, and kleio_runtime's errors, into error
replies in one place.
"""

from __future__ import annotations

from kleio_client import protocol
from kleio_runtime import errors as runtime


class KleiodError(Exception):
    code = protocol.E_INTERNAL


class ConfigError(KleiodError, runtime.ConfigError):
    code = protocol.E_BAD_REQUEST


class BadRequest(KleiodError):
    code = protocol.E_BAD_REQUEST


class TrialNotFound(KleiodError):
    code = protocol.E_NOT_FOUND


class AmbiguousId(KleiodError):
    code = protocol.E_AMBIGUOUS


class ReservationRefused(KleiodError):
    pass


class AlreadyRunning(ReservationRefused):
    code = protocol.E_ALREADY_RUNNING


class TrialCompleted(ReservationRefused):
    code = protocol.E_COMPLETED


class ChangeRefused(ReservationRefused):
    code = protocol.E_CHANGED


class StorageError(KleiodError):
    code = protocol.E_STORAGE


class ArtifactMissing(StorageError):
    pass


class SpawnFailed(KleiodError):
    code = protocol.E_INTERNAL
