"""Storage backends, chosen by the database URL's scheme."""

from __future__ import annotations

from pathlib import Path

from kleiod.errors import ConfigError
from kleiod.storage.base import Storage


def open_storage(url: str) -> Storage:
    if url.startswith("sqlite:///"):
        from kleiod.storage.sqlite import SQLiteStorage

        return SQLiteStorage(Path(url[len("sqlite:///"):]).expanduser())
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}; use sqlite:///PATH"
    )
