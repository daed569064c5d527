"""Kleio's client library: ``from kleio_client import kleio_logger``.

Depends on pyzmq, msgpack and the standard library only.
"""

from kleio_client.artifact import Artifact
from kleio_client.errors import DaemonUnavailable, KleioError, RequestRefused
from kleio_client.logger import Logger, kleio_logger
from kleio_client.version import __version__

__all__ = [
    "Artifact",
    "DaemonUnavailable",
    "KleioError",
    "Logger",
    "RequestRefused",
    "__version__",
    "kleio_logger",
]
