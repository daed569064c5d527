"""Kleio's configuration, resolved once: flag > KLEIO_* environment > config file > default.

Every setting of every part is here: the daemon's (database, lease, memory
bound), the CLI's (namespace, fingerprint fields), the trial's client's
(flush timeout, buffer bound), which the supervisor resolves and hands to the
trial through the environment that ``kleio_client.protocol`` names, and whether the
trial's TensorBoard scalars are captured (its ``PYTHONPATH``, see
``kleio_client.startup``).  Also
where the runtime directory (sockets and lock, mode 0700), the data directory
(the embedded journal) and the config file are, through platformdirs.
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
from kleio_runtime.errors import ConfigError

if __import__("sys").version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "kleio"
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
    # Who the trials are named for (DESIGN.md: the user, or a configured namespace).
    namespace: str | None = None
    # A trial's client: how long it waits for acknowledgements at exit, and how many
    # bytes of unacknowledged records it holds in memory before spilling to disk.
    flush_timeout: float = protocol.DEFAULT_FLUSH_TIMEOUT
    buffer_bytes: int = protocol.DEFAULT_BUFFER_BYTES
    # A trial's SummaryWriter scalars journaled as statistics (kleio_client.startup).
    capture_tensorboard: bool = True

    @property
    def database_redacted(self) -> str:
        return redact(self.database)


def resolve(flags: dict[str, Any] | None = None) -> Config:
    """The configuration of this process: ``flags`` (a command's options, None where
    not given) over ``KLEIO_*`` variables over the config file over the defaults."""
    env = os.environ
    file_settings = _read_config_file()

    def pick(key: str, default: Any = None) -> Any:
        value = _pick(key, flags, env, file_settings)
        return default if value is None else value

    data_dir = Path(pick("data_dir") or platformdirs.user_data_dir(APP))
    runtime = pick("runtime_dir")
    return Config(
        runtime_dir=Path(runtime) if runtime else Path(protocol.default_runtime_dir(env)),
        data_dir=data_dir,
        database=_absolute(str(pick("database") or f"sqlite:///{data_dir / 'journal.sqlite'}")),
        lease_seconds=_seconds(pick("lease_seconds", DEFAULT_LEASE_SECONDS), "lease_seconds"),
        fingerprint=_fingerprint_fields(file_settings.get("fingerprint") or {}),
        hold_bytes=_whole(pick("hold_bytes", DEFAULT_HOLD_BYTES), "hold_bytes"),
        allow_network_filesystem=_yes(pick("allow_network_filesystem"), "allow_network_filesystem"),
        namespace=str(pick("namespace")) if pick("namespace") else None,
        flush_timeout=_seconds(
            pick("flush_timeout", protocol.DEFAULT_FLUSH_TIMEOUT), "flush_timeout"
        ),
        buffer_bytes=_whole(pick("buffer_bytes", protocol.DEFAULT_BUFFER_BYTES), "buffer_bytes"),
        capture_tensorboard=_yes(pick("capture_tensorboard", True), "capture_tensorboard"),
    )


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:  # NaN too
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    return seconds


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
    known = protocol.FINGERPRINT_FIELDS
    if not isinstance(table, dict) or set(table) - set(known):
        raise ConfigError("[fingerprint] takes `code` and `environment`, lists of field names")
    fields = {}
    for part, names in table.items():
        if not isinstance(names, list):
            raise ConfigError(
                f"[fingerprint] {part} must be a list of field names, like "
                f"{sorted(known[part])}; not {names!r}"
            )
        unknown = set(names) - known[part]
        if unknown:
            raise ConfigError(
                f"[fingerprint] {part}: unknown fields {sorted(unknown)}; "
                f"known: {sorted(known[part])}"
            )
        fields[part] = list(names)
    return fields


def _absolute(url: str) -> str:
    """A SQLite URL's path made absolute now, so that it never depends on a process's cwd."""
    if not url.startswith(SQLITE_PREFIX):
        return url
    path = os.path.abspath(os.path.expanduser(url[len(SQLITE_PREFIX) :]))
    return SQLITE_PREFIX + path


def _pick(key: str, flags: dict[str, Any] | None, env: Any, file_settings: dict[str, Any]) -> Any:
    if flags and flags.get(key) is not None:
        return flags[key]
    from_env = env.get("KLEIO_" + key.upper())
    if from_env:
        return from_env
    return file_settings.get(key)


def config_file() -> Path:
    """``$XDG_CONFIG_HOME/kleio/config.toml`` (platformdirs' user config directory)."""
    return platformdirs.user_config_path(APP) / "config.toml"


def _read_config_file() -> dict[str, Any]:
    path = config_file()
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or remove that file") from None


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
