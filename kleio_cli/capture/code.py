"""The code that runs: the script's git repository, or the script itself outside git.

Recorded: commit, branch, remote (credentials stripped), whether dirty, the
full patch of uncommitted changes to tracked files (binary-safe, so the exact
code can be recovered with ``git apply``), and untracked source files (code
and config by extension, under 1 MB, not ignored by git; never ``.env`` or
key files) with their hashes and, when small, their content.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

CODE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyx",
        ".pxd",
        ".pyi",
        ".c",
        ".cc",
        ".cpp",
        ".cxx",
        ".h",
        ".hpp",
        ".cu",
        ".cuh",
        ".sh",
        ".bash",
        ".zsh",
        ".jl",
        ".r",
        ".lua",
        ".go",
        ".rs",
        ".java",
        ".scala",
        ".js",
        ".ts",
    }
)
CONFIG_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf"})
SECRET_NAMES = re.compile(
    r"(^|/)(\.env(\..*)?|\.netrc|\.pgpass|id_(rsa|dsa|ecdsa|ed25519)(\.pub)?|credentials[^/]*"
    r"|secrets?[^/]*|[^/]*\.(pem|key|p12|pfx|keystore|jks))$",
    re.IGNORECASE,
)
MAX_UNTRACKED_BYTES = 1024 * 1024
MAX_INLINE_BYTES = 64 * 1024
MAX_UNTRACKED_FILES = 2000
_CREDENTIALS = re.compile(r"(?<=://)[^/@]*@")


def strip_credentials(url: str) -> str:
    return _CREDENTIALS.sub("", url)


def capture_code(script: Path | None, anchor: Path) -> dict[str, Any]:
    import git  # 0.1 s to import: only here, in a capture thread

    try:
        repo = git.Repo(anchor, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return _outside_git(script)
    with repo:
        return _in_git(repo, git)


def _in_git(repo: Any, git: Any) -> dict[str, Any]:
    root = Path(repo.working_tree_dir)
    valid = repo.head.is_valid()
    commit = repo.head.commit.hexsha if valid else None
    branch = None if repo.head.is_detached or not valid else repo.active_branch.name
    remote = None
    if "origin" in [r.name for r in repo.remotes]:
        remote = strip_credentials(next(iter(repo.remotes.origin.urls), "") or "") or None
    patch = repo.git.diff("HEAD", "--binary") + "\n" if valid else ""
    if patch == "\n":
        patch = ""
    return {
        "git": True,
        "root": str(root),
        "commit": commit,
        "branch": branch,
        "remote": remote,
        "dirty": bool(patch),
        "patch": patch,
        "patch_files": patch_files(patch),
        "untracked": _untracked(root, repo.untracked_files),
    }


def files_now(code: dict[str, Any], paths: list[str]) -> dict[str, str | None] | None:
    """The content hashes, in this checkout now, of the files (relative to the repository
    root) that the trial ran before: None outside git, None for a file missing."""
    if not code.get("git") or not code.get("root"):
        return None
    root = Path(code["root"])
    hashes: dict[str, str | None] = {}
    for path in paths:
        try:
            hashes[path] = hashlib.sha256((root / path).read_bytes()).hexdigest()
        except OSError:
            hashes[path] = None
    return hashes


def patch_files(patch: str) -> list[str]:
    return re.findall(r"^diff --git a/(.+?) b/", patch, flags=re.MULTILINE)


def _untracked(root: Path, names: list[str]) -> list[dict[str, Any]]:
    found = []
    for name in names[:MAX_UNTRACKED_FILES]:
        suffix = Path(name).suffix.lower()
        kind = (
            "code" if suffix in CODE_SUFFIXES else "config" if suffix in CONFIG_SUFFIXES else None
        )
        if kind is None or SECRET_NAMES.search(name):
            continue
        path = root / name
        try:
            info = path.stat()
            if path.is_symlink() or info.st_size > MAX_UNTRACKED_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        # mtime: a file modified while the trial ran was written by it, not by the user
        entry: dict[str, Any] = {
            "path": name,
            "kind": kind,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "mtime": info.st_mtime,
        }
        if len(data) <= MAX_INLINE_BYTES:
            entry["content"] = data.decode("utf-8", errors="replace")
        found.append(entry)
    return found


def _outside_git(script: Path | None) -> dict[str, Any]:
    if script is None or not script.is_file():
        return {"git": False, "script": None}
    data = script.read_bytes()
    return {
        "git": False,
        "script": str(script),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content": data.decode("utf-8", errors="replace")
        if len(data) <= MAX_UNTRACKED_BYTES
        else None,
    }
