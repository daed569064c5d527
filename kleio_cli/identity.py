"""Trial identity: the same command names the same trial, wherever the checkout lives.

The id hashes an identity version, the project key (the git repository's root
commit, else its normalised remote, else the script's absolute path), the
user (or KLEIO_NAMESPACE), the canonical command (interpreter reduced to its
role, script and working directory relative to the project root, arguments
with ``--opt=value`` split) and the content of small configuration files
named on the command line.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kleio_cli.capture.configuration import config_files, launcher_identity, parse_command

IDENTITY_VERSION = 1
ID_LENGTH = 32


@dataclass(frozen=True)
class Identity:
    id: str
    canonical: dict[str, Any]
    project_root: str


def canonical_args(args: list[str]) -> list[str]:
    """``--lr=0.1`` and ``--lr 0.1`` are one."""
    out: list[str] = []
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            out.extend([name, value])
        else:
            out.append(arg)
    return out


def compute(argv: list[str], cwd: str, namespace: str | None = None) -> Identity:
    """The trial that ``argv`` run in ``cwd`` names, for ``namespace`` (the configured
    one; else the user)."""
    command = parse_command(argv)
    script_path = Path(cwd, command.script).resolve() if command.script else None
    anchor = script_path.parent if script_path else Path(cwd).resolve()
    root, project = _project(anchor, script_path)
    args = canonical_args(command.args)
    canonical = {
        "version": IDENTITY_VERSION,
        "project": project,
        "user": namespace or getpass.getuser(),
        "interpreter": command.interpreter,
        "interpreter_options": command.interpreter_options,
        "script": _relative(script_path, root) if script_path else None,
        "module": command.module,
        "code": command.code,
        "cwd": _relative(Path(cwd).resolve(), root),
        "args": args,
        "config_files": _config_files(args, cwd),
    }
    if command.launcher is not None:  # torchrun and python -m torch.distributed.run are one
        canonical["launcher"] = [command.launcher, *launcher_identity(command.launcher_options)]
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return Identity(digest[:ID_LENGTH], canonical, str(root))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _project(anchor: Path, script: Path | None) -> tuple[Path, str]:
    """(project root, project key)."""
    top = _git(anchor, "rev-parse", "--show-toplevel")
    if top:
        root = Path(top).resolve()
        first = _git(root, "rev-list", "--max-parents=0", "HEAD")
        if first:
            return root, "git:" + sorted(first.split())[0]
        remote = _git(root, "config", "--get", "remote.origin.url")
        if remote:
            return root, "remote:" + normalize_remote(remote)
        return root, "path:" + str(root)
    if script is not None:
        return script.parent, "path:" + str(script)
    return anchor, "path:" + str(anchor)


def git_toplevel(where: Path) -> Path | None:
    top = _git(where, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def _git(where: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def normalize_remote(url: str) -> str:
    """host/path of a remote, without scheme, credentials or ``.git``."""
    url = re.sub(r"^[a-z+]+://", "", url.strip())
    url = re.sub(r"^[^@/]*@", "", url)
    url = url.replace(":", "/", 1) if re.match(r"^[^/]+:[^/]", url) else url
    url = url.removesuffix("/").removesuffix(".git")
    host, _, path = url.partition("/")
    return f"{host.lower()}/{path}"


def _config_files(args: list[str], cwd: str) -> dict[str, str]:
    return {name: file["sha256"] for name, file in config_files(args, cwd).items()}
