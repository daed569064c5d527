"""The environment a trial runs in: its interpreter and packages, the machine, the variables.

The interpreter is the trial's: the ``python`` the command names (found on
the caller's PATH), or a script's shebang; its packages are listed by
running ``probe.py`` with it, unless it is this very interpreter.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from kleio_cli.capture import probe
from kleio_cli.capture.gpu import capture_gpus
from kleio_client.version import __version__

PROBE_TIMEOUT = 30.0
SECRET_VARIABLE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
URL_WITH_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@]+@", re.IGNORECASE)
_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?$")


def interpreter_of(argv: list[str], cwd: str) -> str | None:
    """The Python the command runs: the named python, or the script's shebang, or PATH's."""
    program = argv[0]
    if _PYTHON.match(os.path.basename(program)):
        return _which(program, cwd)
    found = program if os.sep in program else shutil.which(program)  # torchrun's python
    path = Path(cwd, found) if found else None
    if path is not None and path.is_file():
        shebang = _shebang(path)
        if shebang:
            return shebang
    return shutil.which("python3") or shutil.which("python")


def _which(program: str, cwd: str) -> str | None:
    if os.sep in program:
        return str(Path(cwd, program))
    return shutil.which(program)


def _shebang(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256).decode(errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[-1])
    return words[0] if _PYTHON.match(os.path.basename(words[0])) else None


def capture_python(interpreter: str | None) -> dict[str, Any]:
    """Python version, executable and installed distributions of ``interpreter``."""
    if interpreter is None:
        return {"python": None, "packages": {}}
    if os.path.abspath(interpreter) == os.path.abspath(sys.executable):
        return probe.probe()
    try:
        done = subprocess.run(
            [interpreter, probe.__file__],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=True,
        )
        return dict(json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"python": {"executable": interpreter, "error": str(exc)[:200]}, "packages": {}}


def capture_machine() -> dict[str, Any]:
    return {
        "os": platform.system(),
        "kernel": platform.release(),
        "architecture": platform.machine(),
        "distribution": _os_release(),
        "hostname": socket.gethostname(),
        "user": getpass.getuser(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count()},
        "memory_bytes": _memory(),
        "gpus": capture_gpus(),
        "kleio": __version__,
    }


def _os_release() -> str | None:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, flags=re.MULTILINE)
    return match.group(1) if match else None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def safe_variables(environ: dict[str, str]) -> dict[str, str]:
    """The environment without anything that may be a secret (by name, or a URL's password)."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if not SECRET_VARIABLE.search(name)
        and not URL_WITH_CREDENTIALS.search(value)
        and not name.startswith("KLEIO_")
    }
