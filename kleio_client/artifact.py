"""An artifact as returned by ``kleio_logger.load_artifact``.

A NamedTuple, not a dataclass: ``dataclasses`` imports ``inspect``, which would
cost every script that imports kleio_client about a megabyte.
"""

from __future__ import annotations

from typing import Any, BinaryIO, NamedTuple


class Artifact(NamedTuple):
    """A stored file of a trial: its name, its metadata and its content."""

    filename: str
    metadata: dict[str, Any]
    sha256: str = ""
    size: int = 0
    path: str = ""
    position: int = 0

    def open(self) -> BinaryIO:
        """The content, as a readable binary file (usable in ``with``)."""
        return open(self.path, "rb")
