"""Run by the trial's own interpreter: what Python it is and what is installed in it.

Standard library only, and no import of kleio: the trial's interpreter may
not have kleio installed.  Prints one JSON object on stdout.  Reads the names
and versions of distributions from their metadata directory names (parsing
every METADATA file would cost ten times more), and the ``direct_url.json``
that marks editable installs.
"""

import json
import os
import platform
import re
import sys

_DIST_DIR = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)\.(dist-info|egg-info)$")


def _version_from_metadata(path):
    for name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, name), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    return None


def _editable_location(path):
    try:
        with open(os.path.join(path, "direct_url.json"), encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    if (info.get("dir_info") or {}).get("editable"):
        return info.get("url")
    return None


def packages():
    found = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            match = _DIST_DIR.match(name)
            if not match:
                continue
            path = os.path.join(entry or ".", name)
            key = re.sub(r"[-_.]+", "-", match.group("name")).lower()
            if key in found:
                continue  # the first on sys.path is the one imported
            version = match.group("version")
            if not re.match(r"^\d", version):
                version = _version_from_metadata(path) or version
            found[key] = {"version": version, "editable": _editable_location(path)}
    return found


def probe():
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        },
        "packages": packages(),
    }


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
