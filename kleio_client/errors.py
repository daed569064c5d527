"""Errors raised by the Kleio client library.

    KleioError                  base of every error the client raises itself
    ├── DaemonUnavailable       inside a trial, the daemon did not answer in time
    └── RequestRefused          the daemon refused a request (carries its code)

Values that cannot be logged raise the built-in ``TypeError`` (or
``ValueError`` for an integer out of range) at the call, naming the key.
"""

from __future__ import annotations


class KleioError(Exception):
    """Base class of the client's own errors."""


class DaemonUnavailable(KleioError):
    """The trial's daemon did not answer within the configured bound."""


class RequestRefused(KleioError):
    """The daemon answered a request with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
