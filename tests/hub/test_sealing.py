"""Secrets at rest (hub.services.sealing): TOTP and webhook signing secrets are sealed in
the database, the key outside it; plaintext rows from before are sealed at start; a key
rotation keeps old rows readable, can be interrupted and resumed, and retires old keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from hub.errors import SecretUnreadable
from hub.models import AlertChannel, User
from hub.services import accounts, sealing
from tests.hub.harness import HubHarness

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def _raw_db_bytes(hub) -> bytes:
    path = os.path.join(hub.config.data_dir, "hub.sqlite3")
    return b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))


async def _with_2fa_and_a_webhook(hub):
    t = await hub.tenant()
    user = await User.get(id=t.user.id)
    uri = await accounts.begin_totp(hub.rt, user)
    secret = pyotp.parse_uri(uri).secret
    await accounts.confirm_totp(hub.rt, user, pyotp.TOTP(secret).now())
    r = await t.owner.post(t.base + "/alerts/channels", json={"kind": "webhook", "name": "w",
                                                            "target": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, await r.get_data(as_text=True)
    return t, secret, (await r.get_json())["secret"]


@BOTH
async def test_secrets_are_sealed_and_rotation_keeps_them_readable(tmp_path, backend):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t, totp_secret, hook_secret = await _with_2fa_and_a_webhook(hub)
        user = await User.get(id=t.user.id)
        channel = await AlertChannel.get(tenant_id=t.id)
        assert sealing.is_sealed(user.totp_secret) and totp_secret not in user.totp_secret
        assert sealing.is_sealed(channel.secret) and hook_secret not in channel.secret
        if backend == "sqlite":
            raw = _raw_db_bytes(hub)
            assert totp_secret.encode() not in raw and hook_secret.encode() not in raw
        keyring = hub.config.keyring_path
        assert keyring.stat().st_mode & 0o777 == 0o600
        sealer = hub.rt.sealer
        assert sealer.open("user.totp_secret", user.totp_secret) == totp_secret
        # A sealed value moved to another column does not open there.
        with pytest.raises(SecretUnreadable):
            sealer.open("alert_channel.secret", user.totp_secret)

        old_primary = sealer.ring.primary
        out = await sealing.rotate(sealer)
        # the TOTP secret, the webhook's signing secret and its URL
        assert out["new"] != old_primary and out["rewrapped"] == 3 and out["pending"] == 0
        user = await User.get(id=t.user.id)
        assert sealing.kek_of(user.totp_secret) == out["new"]
        assert sealer.open("user.totp_secret", user.totp_secret) == totp_secret
        # Signing in with 2FA still works after the rotation (the service opens the new row).
        await accounts.second_factor(hub.rt, user, pyotp.TOTP(totp_secret).at(time.time() + 30), "127.0.0.1")
        assert (await sealing.rotate(sealer, resume=True, retire=True))["retired"] == [old_primary]
        assert old_primary not in json.loads(keyring.read_text())["keys"]


async def test_an_interrupted_rotation_resumes_and_old_rows_stay_readable(tmp_path):
    async with HubHarness(tmp_path) as hub:
        users = []
        for _ in range(5):
            u = await hub.user(totp=False)
            await accounts.begin_totp(hub.rt, u)
            users.append(u)
        sealer = hub.rt.sealer
        first = sealer.ring.primary
        out = await sealing.rotate(sealer, limit=2)  # stands for a crash after two rows
        assert out["rewrapped"] == 2 and out["pending"] == 3
        with pytest.raises(Exception, match="still under an older key"):
            await sealing.rotate(sealer, resume=True, retire=True, limit=0)
        # Every row opens, whichever key wraps it.
        for u in await User.all():
            assert len(sealer.open("user.totp_pending_secret", u.totp_pending_secret)) == 32
        out = await sealing.rotate(sealer, resume=True)
        assert out["new"] is None and out["rewrapped"] == 3 and out["pending"] == 0
        assert await sealing.keys_in_use() == {out["primary"]}
        assert (await sealing.rotate(sealer, resume=True, retire=True))["retired"] == [first]


async def test_plaintext_rows_from_before_are_sealed_at_start(tmp_path):
    async with HubHarness(tmp_path) as hub:
        u = await hub.user()
        await User.filter(id=u.id).update(totp_secret="JBSWY3DPEHPK3PXP")
        t = await hub.tenant()
        await AlertChannel.create(tenant_id=t.id, kind="webhook", name="w", target="https://x.example/…",
                                  url="https://x.example/h", secret="bws_legacy")
        # Still usable before the sweep: a plaintext value passes through.
        assert hub.rt.sealer.open("user.totp_secret", "JBSWY3DPEHPK3PXP") == "JBSWY3DPEHPK3PXP"
        assert await sealing.seal_legacy(hub.rt.sealer) == 3
        assert await sealing.seal_legacy(hub.rt.sealer) == 0  # once
        row = await User.get(id=u.id)
        assert hub.rt.sealer.open("user.totp_secret", row.totp_secret) == "JBSWY3DPEHPK3PXP"
        channel = await AlertChannel.get(name="w")
        assert hub.rt.sealer.open("alert_channel.secret", channel.secret) == "bws_legacy"
        assert hub.rt.sealer.open("alert_channel.url", channel.url) == "https://x.example/h"


async def test_a_wrong_keyring_or_an_altered_value_is_a_clear_error(tmp_path):
    async with HubHarness(tmp_path) as hub:
        u = await hub.user(totp=False)
        await accounts.begin_totp(hub.rt, u)
        value = (await User.get(id=u.id)).totp_pending_secret
        tampered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
        with pytest.raises(SecretUnreadable):
            hub.rt.sealer.open("user.totp_pending_secret", tampered)
        for junk in ("bwenc1:", "bwenc1:x:y", "bwenc1:nokey:AAAA:AAAA", "bwenc1:a:b:c:d"):
            with pytest.raises(SecretUnreadable):
                hub.rt.sealer.open("user.totp_pending_secret", junk)
        other = sealing.Sealer(tmp_path / "other-keyring")
        with pytest.raises(SecretUnreadable, match="does not hold"):
            other.open("user.totp_pending_secret", value)
        (tmp_path / "broken").write_text("{not json")
        with pytest.raises(SecretUnreadable, match="not valid"):
            sealing.Sealer(tmp_path / "broken").seal("c", "x")


async def test_webhook_urls_are_sealed_masked_rotated_and_still_delivered(tmp_path):
    """Slack's and Discord's URLs carry their token: the column never holds it."""
    from hub.models import OutboxMessage
    from hub.services import alerts, outbox
    from tests.hub.test_alerts import Receiver

    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t = await hub.tenant()
        with Receiver(secret=None) as slack:
            url = slack.url + "/T0001/B0002/tokentokentoken"
            r = await t.owner.post(t.base + "/alerts/channels", json={"kind": "slack", "name": "s", "target": url})
            assert r.status_code == 201, await r.get_data(as_text=True)
            shown = (await r.get_json())["target"]
            assert "tokentokentoken" not in shown and shown.endswith("/…") and shown.startswith("http://127.0.0.1")
            listed = await (await t.owner.get(t.base + "/alerts/channels")).get_json()
            assert "tokentokentoken" not in json.dumps(listed)
            row = await AlertChannel.get(tenant_id=t.id, kind="slack")
            assert "tokentokentoken" not in row.target and sealing.is_sealed(row.url)
            assert hub.rt.sealer.open("alert_channel.url", row.url) == url
            out = await sealing.rotate(hub.rt.sealer)
            row = await AlertChannel.get(id=row.id)
            assert sealing.kek_of(row.url) == out["new"]
            await OutboxMessage.all().delete()
            await alerts.observe(hub.rt, t.id, "xdp_generic", "a", "web1: running in generic XDP mode")
            message = await OutboxMessage.get(kind="slack")
            assert "tokentokentoken" not in message.target
            assert await outbox.deliver_due(hub.rt) == 1
        assert slack.calls and "generic XDP" in slack.calls[0][1]["text"]
        raw = _raw_db_bytes(hub)
        assert b"tokentokentoken" not in raw


async def test_migration_0013_moves_plaintext_urls_out_of_target(tmp_path):
    """Rows from before 0013 (the URL in `target`): its data step moves the URL to `url`
    and masks both copies; the start's sweep then seals it."""
    import importlib
    from types import SimpleNamespace

    from hub.models import OutboxMessage
    from tortoise import connections

    step = importlib.import_module("hub.migrations.0013_sealed_urls_email_change")._move_urls
    async with HubHarness(tmp_path) as hub:
        t = await hub.tenant()
        url = "https://discord.example/api/webhooks/1/secrettoken"
        c = await AlertChannel.create(tenant_id=t.id, kind="discord", name="d", target=url)
        m = await OutboxMessage.create(tenant_id=t.id, channel_id=c.id, kind="discord", target=url,
                                       next_attempt_at=sealing_now(), created_at=sealing_now())
        mail = await AlertChannel.create(tenant_id=t.id, kind="email", name="e", target="o'brien@example.com")
        await step(None, SimpleNamespace(client=connections.get("default")))
        c, m, mail = await AlertChannel.get(id=c.id), await OutboxMessage.get(id=m.id), await AlertChannel.get(id=mail.id)
        assert c.target == m.target == "https://discord.example/…" and c.url == url
        assert mail.target == "o'brien@example.com" and mail.url == ""
        assert await sealing.seal_legacy(hub.rt.sealer) == 1
        c = await AlertChannel.get(id=c.id)
        assert sealing.is_sealed(c.url) and hub.rt.sealer.open("alert_channel.url", c.url) == url


def sealing_now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def test_rotate_key_command(tmp_path):
    env = {**os.environ, "BULWARK_HUB_DATA_DIR": str(tmp_path / "hub")}
    run = [sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))", "rotate-key"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "new primary key" in first.stdout
    again = subprocess.run([*run, "--resume", "--retire"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "rewrapped 0 value(s); 0 left" in again.stdout
    ring = json.loads((tmp_path / "hub" / "secrets_keyring").read_text())
    assert len(ring["keys"]) == 1
