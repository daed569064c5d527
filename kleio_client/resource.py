"""Content hashes of a trial's inputs (datasets, pretrained weights), cached.

A file's hash is cached by (path, size, mtime) in ``$XDG_CACHE_HOME/kleio/
resources.json``, so a large dataset is read once, not at every run.  A
directory's hash covers the relative paths and hashes of the files below it.
Standard library only: the user's process and the CLI both use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_NAME = "resources.json"
READ_BYTES = 1024 * 1024


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "kleio" / CACHE_NAME


class HashCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        try:
            self._entries: dict[str, list[Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._entries = {}
        self._dirty = False

    def file_hash(self, path: Path) -> str:
        info = path.stat()
        key = str(path)
        cached = self._entries.get(key)
        if cached and cached[0] == info.st_size and cached[1] == info.st_mtime_ns:
            return str(cached[2])
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_BYTES):
                digest.update(chunk)
        self._entries[key] = [info.st_size, info.st_mtime_ns, digest.hexdigest()]
        self._dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".resources")
        with os.fdopen(fd, "w") as handle:
            json.dump(self._entries, handle)
        os.replace(tmp, self.path)
        self._dirty = False


def describe(path: str | os.PathLike[str], cache: HashCache | None = None) -> dict[str, Any]:
    """{path, kind, sha256, size, files} of a file or directory; sha256 None when missing."""
    target = Path(path).expanduser().resolve()
    cache = cache or HashCache()
    try:
        if target.is_dir():
            digest = hashlib.sha256()
            size = files = 0
            for file in sorted(p for p in target.rglob("*") if p.is_file()):
                digest.update(
                    f"{file.relative_to(target).as_posix()}\0{cache.file_hash(file)}\n".encode()
                )
                size += file.stat().st_size
                files += 1
            return {
                "path": str(target),
                "kind": "directory",
                "sha256": digest.hexdigest(),
                "size": size,
                "files": files,
            }
        if target.is_file():
            return {
                "path": str(target),
                "kind": "file",
                "sha256": cache.file_hash(target),
                "size": target.stat().st_size,
                "files": 1,
            }
        return {"path": str(target), "kind": "missing", "sha256": None, "size": 0, "files": 0}
    finally:
        cache.save()
