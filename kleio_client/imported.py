"""The trial's code this process ran: the project's source files among its imports.

The logger reports them (``protocol.IMPORTED``) at the process's first record and at
its exit: the modules in ``sys.modules`` whose file lies under the project root (the
repository the CLI captured, which the supervisor names in ``KLEIO_PROJECT_ROOT``),
the script (``__main__``) among them, each as its path relative to the root and the
sha256 of its content.  Files of the standard library and of site-packages lie
outside the root; those of an environment inside it (the project's ``.venv``) are
left out too, and so are Kleio's own (``kleio_client``).  Each file is hashed once
per process and reported once: a forked child inherits what its parent reported,
and reports only what it imported since.  Standard library only; ``hashlib`` is
imported at the first report.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Path components that mark an installed distribution, not the project's own code.
_INSTALLED = frozenset({"site-packages", "dist-packages"})


class ImportedFiles:
    """The project's files this process imported, reported as they come."""

    def __init__(self, root: str) -> None:
        roots = {os.path.abspath(root), os.path.realpath(root)}
        self._roots = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        # The interpreter's environments that lie inside the root (the project's .venv);
        # not those that hold it (a project in /usr/local/src, Python in /usr/local).
        environments = {sys.prefix, sys.exec_prefix, sys.base_prefix}
        environments |= {os.path.realpath(p) for p in environments}
        inside = (p.rstrip(os.sep) + os.sep for p in environments)
        self._environments = tuple(p for p in inside if p.startswith(self._roots))
        # Kleio's own packages, which a checkout of Kleio holds: not the trial's code.
        self._environments += _KLEIO_PACKAGES
        # Each module file looked at, and its path relative to the root (None: not the
        # project's, or unreadable): a file is judged and hashed once.
        self._judged: dict[str, str | None] = {}
        self._hashes: dict[str, str] = {}
        self._reported: set[str] = set()

    def unreported(self) -> dict[str, str]:
        """{relative path: sha256} of the project's files imported and not reported yet,
        taken as reported."""
        new: dict[str, str] = {}
        for module in list(sys.modules.values()):
            path = _file_of(module)
            if path is None:
                continue
            if path in self._judged:
                relative = self._judged[path]
            else:
                relative = self._judged[path] = self._relative(path)
            if relative is None or relative in self._reported:
                continue
            digest = self._hash(relative, path)
            self._reported.add(relative)
            if digest is not None:
                new[relative] = digest
        return new

    def _relative(self, path: str) -> str | None:
        """The path relative to the root of a file of the project's, else None."""
        try:
            if not os.path.isabs(path) or os.sep + "." in path:  # relative, or with ..
                path = os.path.abspath(path)
            path.encode("utf-8")  # a name that is not text cannot be journaled
        except (OSError, UnicodeEncodeError):  # the working directory is gone
            return None
        if not path.startswith(self._roots) or path.startswith(self._environments):
            return None
        for root in self._roots:
            if path.startswith(root):
                parts = path[len(root) :].split(os.sep)
                if _INSTALLED.isdisjoint(parts):
                    return "/".join(parts)
        return None

    def _hash(self, relative: str, path: str) -> str | None:
        """The content's sha256, once per file; None when it cannot be read (a module
        from a zip file, a file deleted since)."""
        digest = self._hashes.get(relative)
        if digest is None:
            import hashlib  # here: it loads OpenSSL (3.5 MiB), for scripts under kleio only

            try:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                return None
            self._hashes[relative] = digest
        return digest


_HERE = os.path.dirname(os.path.abspath(__file__))
_KLEIO_PACKAGES = tuple(
    {
        os.path.join(top, package) + os.sep
        for top in {os.path.dirname(_HERE), os.path.dirname(os.path.realpath(_HERE))}
        for package in ("kleio_client", "kleio")
    }
)


def _file_of(module: Any) -> str | None:
    """A module's ``__file__``, read from its dict: a lazy module (importlib's
    LazyLoader) would run on any attribute access, and some objects in ``sys.modules``
    are not modules at all."""
    try:
        namespace = object.__getattribute__(module, "__dict__")
    except (AttributeError, TypeError):
        return None
    path = namespace.get("__file__") if isinstance(namespace, dict) else None
    return path if isinstance(path, str) else None


def batches(files: dict[str, str], size: int) -> list[dict[str, str]]:
    """``files`` in reports of at most ``size`` files."""
    items = sorted(files.items())
    return [dict(items[start : start + size]) for start in range(0, len(items), size)]
