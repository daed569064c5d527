"""Storage backends, chosen by the database URL's scheme."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kleiod.errors import ConfigError
from kleiod.storage.base import Storage


def open_storage(
    url: str, cache_dir: Path | None = None, allow_network_filesystem: bool = False
) -> Storage:
    """``sqlite:///PATH`` (the embedded journal) or ``mongodb://...`` (a shared one).

    ``cache_dir`` holds local copies of artifacts kept in MongoDB's GridFS;
    ``allow_network_filesystem`` lets a SQLite journal live on NFS and the like,
    written by one machine at a time.
    """
    if url.startswith("sqlite:///"):
        from kleiod.storage.sqlite import SQLiteStorage

        return SQLiteStorage(Path(url[len("sqlite:///") :]).expanduser(), allow_network_filesystem)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from kleiod.storage.mongo import MongoStorage
        except ImportError as exc:
            raise ConfigError(
                f"a MongoDB journal needs pymongo ({exc}); install it with "
                "`pip install 'kleio[mongo]'`"
            ) from None

        return MongoStorage(url, cache_dir or Path(tempfile.gettempdir()) / "kleio-artifacts")
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}; use sqlite:///PATH or mongodb://HOST/DB"
    )
