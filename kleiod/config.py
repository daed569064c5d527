"""Kleio's configuration, resolved once: flag > KLEIO_* environment > config file > default.

Also where the daemon's runtime directory (its sockets, mode 0700) and data
directory (the embedded journal) are.  The CLI reads this module too: it is a
leaf with no daemon machinery.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from kleio_client import protocol
from kleiod import fingerprint
from kleiod.errors import ConfigError

if __import__("sys").version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "kleio"
SOCKET_PATH_LIMIT = 107
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_HOLD_BYTES = 64 * 1024 * 1024
SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class Config:
    runtime_dir: Path
    data_dir: Path
    database: str
    lease_seconds: float
    fingerprint: dict[str, list[str]] = field(default_factory=dict)
    # Records the daemon keeps in memory while the database is away, before spilling to disk.
    hold_bytes: int = DEFAULT_HOLD_BYTES
    # A SQLite journal on NFS and the like, knowingly (one machine at a time writes it).
    allow_network_filesystem: bool = False

    @property
    def database_redacted(self) -> str:
        return redact(self.database)


def resolve(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    file_settings = _read_config_file(env)
    data_dir = Path(_pick("data_dir", flags, env, file_settings) or _default_data_dir())
    database = _pick("database", flags, env, file_settings)
    lease = _pick("lease_seconds", flags, env, file_settings) or DEFAULT_LEASE_SECONDS
    runtime = _pick("runtime_dir", flags, env, file_settings)
    try:
        lease_seconds = float(lease)
    except (TypeError, ValueError):
        raise ConfigError(f"lease_seconds must be a number of seconds, not {lease!r}") from None
    return Config(
        runtime_dir=Path(runtime) if runtime else default_runtime_dir(env),
        data_dir=data_dir,
        database=_absolute(str(database or f"sqlite:///{data_dir / 'journal.sqlite'}")),
        lease_seconds=lease_seconds,
        fingerprint=_fingerprint_fields(file_settings.get("fingerprint") or {}),
        hold_bytes=_whole(_pick("hold_bytes", flags, env, file_settings) or DEFAULT_HOLD_BYTES,
                          "hold_bytes"),
        allow_network_filesystem=_yes(_pick("allow_network_filesystem", flags, env,
                                            file_settings), "allow_network_filesystem"),
    )


def _yes(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _whole(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise ConfigError(f"{name} must be a whole number of bytes, not {value!r}")
    return number


def _fingerprint_fields(table: Any) -> dict[str, list[str]]:
    """The ``[fingerprint]`` table: which fields of code and environment count."""
    known = {"code": fingerprint.KNOWN_CODE_FIELDS,
             "environment": fingerprint.KNOWN_ENVIRONMENT_FIELDS}
    if not isinstance(table, dict) or set(table) - set(known):
        raise ConfigError("[fingerprint] takes `code` and `environment`, lists of field names")
    fields = {}
    for part, names in table.items():
        if not isinstance(names, list):
            raise ConfigError(f"[fingerprint] {part} must be a list of field names, like "
                              f"{sorted(known[part])}; not {names!r}")
        unknown = set(names) - known[part]
        if unknown:
            raise ConfigError(f"[fingerprint] {part}: unknown fields {sorted(unknown)}; "
                              f"known: {sorted(known[part])}")
        fields[part] = list(names)
    return fields


def _absolute(url: str) -> str:
    """A SQLite URL's path made absolute now, so that it never depends on a process's cwd."""
    if not url.startswith(SQLITE_PREFIX):
        return url
    path = os.path.abspath(os.path.expanduser(url[len(SQLITE_PREFIX):]))
    return SQLITE_PREFIX + path


def _pick(key: str, flags: dict[str, Any] | None, env: Any, file_settings: dict[str, Any]) -> Any:
    if flags and flags.get(key) is not None:
        return flags[key]
    from_env = env.get("KLEIO_" + key.upper())
    if from_env:
        return from_env
    return file_settings.get(key)


def config_file(env: Any = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / APP / "config.toml"


def _read_config_file(env: Any) -> dict[str, Any]:
    path = config_file(env)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or remove that file") from None


def _default_data_dir() -> str:
    return platformdirs.user_data_dir(APP)


def default_runtime_dir(env: Any) -> Path:
    """$XDG_RUNTIME_DIR/kleio, or a private directory under the temp dir on batch nodes
    (kleio_client finds the daemon the same way)."""
    return Path(protocol.default_runtime_dir(env))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, refusing one that another user owns."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; set KLEIO_RUNTIME_DIR elsewhere")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/]*)(:[^@/]*)?@")


def redact(url: str) -> str:
    """The URL with its password replaced, fit for output and logs."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url, count=1)
