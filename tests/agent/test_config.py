"""Config layers: defaults → TOML → environment → flags; unknown keys are errors."""
from __future__ import annotations

import pytest

from agent.config import AgentConfig, load_config
from agent.errors import ConfigError


def test_layers_override_in_order(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('name = "edge"\niface = "eth0"\nsample_interval_s = 2\nadmin_prefixes = ["10.0.0.0/8"]\n')
    cfg = load_config(file=f, env={"BULWARK_AGENT_IFACE": "eth1", "BULWARK_AGENT_HTTP_PORT": "0",
                                   "BULWARK_AGENT_ADMIN_PREFIXES": "10.1.0.0/16, 10.2.0.0/16"},
                      flags={"iface": "eth2", "xdp_mode": None})
    assert cfg.name == "edge" and cfg.iface == "eth2" and cfg.http_port == 0
    assert cfg.sample_interval_s == 2.0 and cfg.xdp_mode == "auto"
    assert cfg.admin_prefixes == ("10.1.0.0/16", "10.2.0.0/16")
    assert str(cfg.pin_dir).endswith("/bulwark/edge") and str(cfg.state_dir).endswith("/agent/edge")
    with pytest.raises(AttributeError):
        cfg.name = "x"  # frozen


@pytest.mark.parametrize("layer", ["file", "env", "flags"])
def test_unknown_keys_are_errors(tmp_path, layer):
    f = tmp_path / "a.toml"
    f.write_text('ifcae = "eth0"\n' if layer == "file" else "")
    env = {"BULWARK_AGENT_IFCAE": "eth0"} if layer == "env" else {}
    flags = {"ifcae": "eth0"} if layer == "flags" else {}
    with pytest.raises(ConfigError, match="ifcae"):
        load_config(file=f, env=env, flags=flags)


@pytest.mark.parametrize("bad", ['xdp_mode = "turbo"', 'http_port = "many"', "sample_interval_s = 0",
                                 'name = "../x"', "iface = 3"])
def test_bad_values_are_errors(tmp_path, bad):
    f = tmp_path / "a.toml"
    f.write_text(bad + "\n")
    with pytest.raises(ConfigError):
        load_config(file=f, env={})


def test_defaults_need_nothing():
    assert load_config(env={}) == AgentConfig()
