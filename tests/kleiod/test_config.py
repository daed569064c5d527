from __future__ import annotations

from pathlib import Path

from kleiod.config import redact, resolve


def test_credentials_are_redacted():
    assert redact("mongodb://alice:s3cret@db:27017/kleio") == "mongodb://alice:***@db:27017/kleio"
    assert redact("sqlite:////tmp/j.sqlite") == "sqlite:////tmp/j.sqlite"


def test_precedence_flag_env_file_default(tmp_path: Path):
    config_home = tmp_path / "cfg"
    (config_home / "kleio").mkdir(parents=True)
    (config_home / "kleio" / "config.toml").write_text('database = "sqlite:////file"\n'
                                                       "lease_seconds = 12\n")
    env = {"XDG_CONFIG_HOME": str(config_home), "XDG_RUNTIME_DIR": str(tmp_path)}
    assert resolve(environ=env).database == "sqlite:////file"
    assert resolve(environ=env).lease_seconds == 12
    env["KLEIO_DATABASE"] = "sqlite:////env"
    assert resolve(environ=env).database == "sqlite:////env"
    assert resolve({"database": "sqlite:////flag"}, environ=env).database == "sqlite:////flag"
    assert resolve(environ=env).runtime_dir == tmp_path / "kleio"


def test_runtime_dir_falls_back_to_a_private_temp_dir(tmp_path: Path):
    env = {"XDG_CONFIG_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "missing")}
    runtime = resolve(environ=env).runtime_dir
    assert runtime.name.startswith("kleio-") and runtime.parent.is_dir()


def test_a_relative_sqlite_path_is_made_absolute_where_it_is_resolved(tmp_path: Path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path), "KLEIO_DATABASE": "sqlite:///rel/j.sqlite"}
    assert resolve(environ=env).database == f"sqlite:///{tmp_path}/rel/j.sqlite"
