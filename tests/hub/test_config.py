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


def test_management_addresses_from_toml_and_env(tmp_path):
    toml = tmp_path / "hub.toml"
    toml.write_text('hub_addresses = ["192.0.2.50", "2001:db8::50"]\nadmin_prefixes = ["198.51.100.0/24"]\n')
    config = load_config(toml, env={"BULWARK_HUB_ADMIN_SSH_PORT": "2222"})
    assert config.hub_addresses == ("192.0.2.50", "2001:db8::50")
    assert config.admin_prefixes == ("198.51.100.0/24",) and config.admin_ssh_port == 2222
    env = {"BULWARK_HUB_HUB_ADDRESSES": "192.0.2.50, 192.0.2.51", "BULWARK_HUB_PUBLIC_URL": "https://hub.example.com"}
    config = load_config(env=env)
    assert config.hub_addresses == ("192.0.2.50", "192.0.2.51") and config.hub_tcp_port == 443
    assert load_config(env={}, public_url="http://127.0.0.1:8443").hub_tcp_port == 8443
    assert load_config(env={}, hub_port=9443).hub_tcp_port == 9443


def test_bad_management_addresses_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="hub_addresses: 'hub.example.com' is not an IP address"):
        load_config(env={"BULWARK_HUB_HUB_ADDRESSES": "hub.example.com"})
    with pytest.raises(ConfigError, match="admin_prefixes: '198.51.100.1/24'"):
        load_config(env={"BULWARK_HUB_ADMIN_PREFIXES": "198.51.100.1/24"})
    toml = tmp_path / "hub.toml"
    toml.write_text('hub_addresses = [5]\n')
    with pytest.raises(ConfigError, match="list of strings"):
        load_config(toml, env={})


WEB_ONLY = 'policy "web"\ndefault drop\npass tcp dport 443\n'


async def test_a_policy_dropping_the_hub_or_admin_ssh_is_refused_at_save_and_deploy(tmp_path):
    from tests.hub.harness import HubHarness, enroll

    async with HubHarness(tmp_path, hub_addresses="192.0.2.50", admin_prefixes="198.51.100.0/24",
                          hub_port=443) as hub:
        t = await hub.tenant()
        a = await enroll(t)
        r = await t.token.post(t.base + "/policies", json={"name": "web", "source": WEB_ONLY})
        latest = (await r.get_json())["latest"]
        assert r.status_code == 201 and latest["plan_digest"] is None
        messages = [d["message"] for d in latest["diagnostics"] if d["severity"] == "error"]
        assert any("drops the hub at 192.0.2.50 port 443" in m and "lock the operator out" in m for m in messages)
        assert any("SSH (port 22) from 198.51.100.0/24" in m for m in messages)
        r = await t.token.post(t.base + "/deployments", json={"policy_id": (await r.get_json())["id"],
                                                              "agent_ids": [a.id]})
        assert r.status_code == 409
        # Passing management traffic first makes it deployable.
        ok = WEB_ONLY + "pass tcp from 192.0.2.50 sport 443\npass tcp from 198.51.100.0/24 dport 22\n"
        r = await t.token.post(t.base + "/policies", json={"name": "web2", "source": ok})
        assert (await r.get_json())["latest"]["errors"] == 0, await r.get_json()


async def test_a_version_saved_before_the_setting_is_checked_again_at_deploy(tmp_path):
    from tests.hub.harness import HubHarness, enroll

    data = {"data_dir": str(tmp_path / "hub"), "secret_key": "k" * 32}
    async with HubHarness(tmp_path, **data) as hub:
        t = await hub.tenant()
        r = await t.token.post(t.base + "/policies", json={"name": "web", "source": WEB_ONLY})
        policy_id = (await r.get_json())["id"]
        assert (await r.get_json())["latest"]["plan_digest"] is not None  # nothing to guard yet
        first = await enroll(t)
        r = await t.token.post(t.base + "/deployments", json={"policy_id": policy_id, "agent_ids": [first.id]})
        assert r.status_code == 201, await r.get_json()
        earlier = (await r.get_json())["id"]
        token, tenant_id = t.token.token, t.id
    async with HubHarness(tmp_path, **data, admin_prefixes="198.51.100.0/24") as hub:
        from tests.hub.harness import Tenant, TokenClient

        t = Tenant(hub, tenant_id, None, None)
        t.token = TokenClient(hub.client(), token)
        a = await enroll(t)
        r = await t.token.post(t.base + "/deployments", json={"policy_id": policy_id, "agent_ids": [a.id]})
        body = await r.get_json()
        assert r.status_code == 409 and "would lock the operator out" in body["message"]
        assert "SSH (port 22) from 198.51.100.0/24" in body["message"]
        # A rollback to a deployment made before the setting is checked the same way.
        r = await t.token.post(f"{t.base}/deployments/{earlier}/rollback", json={})
        assert r.status_code == 409 and "would lock the operator out" in (await r.get_json())["message"]
