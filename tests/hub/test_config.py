from __future__ import annotations

import pytest

from hub.config import load_config
from hub.errors import ConfigError


def test_defaults_toml_then_env(tmp_path):
    toml = tmp_path / "hub.toml"
    toml.write_text('bind = "0.0.0.0:9000"\nlong_poll_max_s = 30\n')
    config = load_config(toml, env={"BULWARK_HUB_LONG_POLL_MAX_S": "45", "OTHER": "x"})
    assert config.bind == "0.0.0.0:9000"
    assert config.long_poll_max_s == 45
    assert config.session_max_age_s == 12 * 3600


def test_unknown_keys_are_refused(tmp_path):
    toml = tmp_path / "hub.toml"
    toml.write_text("bnid = 1\n")
    with pytest.raises(ConfigError, match="bnid"):
        load_config(toml, env={})
    with pytest.raises(ConfigError, match="BULWARK_HUB_BNID"):
        load_config(env={"BULWARK_HUB_BNID": "x"})


def test_wrong_types_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="integer"):
        load_config(env={"BULWARK_HUB_LONG_POLL_MAX_S": "soon"})
    toml = tmp_path / "hub.toml"
    toml.write_text("bind = 8443\n")
    with pytest.raises(ConfigError, match="string"):
        load_config(toml, env={})


def test_config_is_frozen():
    config = load_config(env={})
    with pytest.raises(AttributeError):
        config.bind = "x"  # type: ignore[misc]


def test_cookie_security_follows_public_url():
    assert not load_config(env={}, public_url="http://localhost:8443").secure_cookies
    assert load_config(env={}, public_url="http://hub.example.com").secure_cookies
    assert load_config(env={}, public_url="https://127.0.0.1").secure_cookies


def test_sqlite_migrates_on_start_postgres_does_not():
    assert load_config(env={}, data_dir="/d").should_migrate_on_start
    assert not load_config(env={}, database_url="postgres://x@localhost/db").should_migrate_on_start
