"""The one resolver of every setting: flag > KLEIO_* environment > config file > default,
with the directories where platformdirs says (XDG_CONFIG_HOME, XDG_DATA_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kleio_client import protocol
from kleio_runtime import launcher
from kleio_runtime.config import redact, resolve
from kleio_runtime.errors import ConfigError


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "KLEIO_DATABASE",
        "KLEIO_RUNTIME_DIR",
        "KLEIO_NAMESPACE",
        "KLEIO_DATA_DIR",
        "KLEIO_FLUSH_TIMEOUT",
        "KLEIO_BUFFER_BYTES",
        "KLEIO_LEASE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "cfg"
    (home / "kleio").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return home


def _write(config_home: Path, text: str) -> None:
    (config_home / "kleio" / "config.toml").write_text(text)


def test_credentials_are_redacted():
    assert redact("mongodb://alice:s3cret@db:27017/kleio") == "mongodb://alice:***@db:27017/kleio"
    assert redact("sqlite:////tmp/j.sqlite") == "sqlite:////tmp/j.sqlite"


def test_precedence_flag_env_file_default(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _write(config_home, 'database = "sqlite:////file"\nlease_seconds = 12\n')
    assert resolve().database == "sqlite:////file"
    assert resolve().lease_seconds == 12
    monkeypatch.setenv("KLEIO_DATABASE", "sqlite:////env")
    assert resolve().database == "sqlite:////env"
    assert resolve({"database": "sqlite:////flag"}).database == "sqlite:////flag"
    assert resolve().runtime_dir == tmp_path / "kleio"


def test_the_client_s_and_the_cli_s_settings_come_from_the_same_file(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
):
    assert resolve().flush_timeout == protocol.DEFAULT_FLUSH_TIMEOUT
    assert resolve().buffer_bytes == protocol.DEFAULT_BUFFER_BYTES
    assert resolve().namespace is None
    _write(
        config_home,
        'flush_timeout = 0\nbuffer_bytes = 4096\nnamespace = "lab"\nruntime_dir = "/tmp/k-file"\n',
    )
    config = resolve()
    assert (config.flush_timeout, config.buffer_bytes, config.namespace) == (0.0, 4096, "lab")
    assert config.runtime_dir == Path("/tmp/k-file")
    monkeypatch.setenv("KLEIO_FLUSH_TIMEOUT", "2.5")
    monkeypatch.setenv("KLEIO_NAMESPACE", "other")
    assert (resolve().flush_timeout, resolve().namespace) == (2.5, "other")


@pytest.mark.parametrize(
    "setting",
    [
        'flush_timeout = "soon"',
        "buffer_bytes = -1",
        'lease_seconds = "nan"',
        "allow_network_filesystem = 3",
    ],
)
def test_a_setting_that_cannot_be_used_is_one_line_naming_it(config_home: Path, setting: str):
    _write(config_home, setting + "\n")
    with pytest.raises(ConfigError) as refused:
        resolve()
    assert setting.split()[0] in str(refused.value) and "\n" not in str(refused.value)


def test_a_malformed_config_file_names_the_file(config_home: Path):
    _write(config_home, "database = \n")
    with pytest.raises(ConfigError, match="config.toml"):
        resolve()


def test_the_config_file_and_the_systemd_unit_follow_xdg_config_home(config_home: Path):
    assert launcher.unit_path() == config_home / "systemd" / "user" / launcher.UNIT


def test_the_data_directory_follows_xdg_data_home(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resolve().data_dir == tmp_path / "data" / "kleio"
    assert resolve().database == f"sqlite:///{tmp_path}/data/kleio/journal.sqlite"


def test_runtime_dir_falls_back_to_a_private_temp_dir(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    runtime = resolve().runtime_dir
    assert runtime.name.startswith("kleio-") and runtime.parent.is_dir()


def test_a_relative_sqlite_path_is_made_absolute_where_it_is_resolved(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLEIO_DATABASE", "sqlite:///rel/j.sqlite")
    assert resolve().database == f"sqlite:///{tmp_path}/rel/j.sqlite"


def test_the_trial_s_client_reads_what_its_supervisor_resolved():
    spec = protocol.SupervisorSpec(
        trial_id="t" * 12,
        execution=2,
        argv=["true"],
        cwd="/",
        runtime_dir="/tmp/k",
        lease_seconds=30.0,
        flush_timeout=0.5,
        buffer_bytes=1024,
        project_root="/repo",
    )
    env = spec.trial_environment()
    assert protocol.ClientSettings.of(env) == (0.5, 1024, "/repo")
    assert env[protocol.ENV_RUNTIME_DIR] == "/tmp/k" and env[protocol.ENV_EXECUTION] == "2"
    assert protocol.ClientSettings.of({}) == (
        protocol.DEFAULT_FLUSH_TIMEOUT,
        protocol.DEFAULT_BUFFER_BYTES,
        None,
    )
    outside_git = protocol.SupervisorSpec(**{**spec.__dict__, "project_root": None})
    assert protocol.ClientSettings.of(outside_git.trial_environment()).project_root is None
