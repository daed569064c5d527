"""An artifact as returned by ``kleio_logger.load_artifact``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO


@dataclass(frozen=True)
class Artifact:
    """A stored file of a trial: its name, its metadata and its content."""

    filename: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    size: int = 0
    path: str = ""
    position: int = 0

    def open(self) -> BinaryIO:
        """The content, as a readable binary file (usable in ``with``)."""
        return open(self.path, "rb")
