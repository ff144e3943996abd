""""2FA for every account" (docs/privacy.md): a user without TOTP signs in to a session that
reaches only the set-up, sign-out, their export and closing (hub.web.BEFORE_2FA); every
other call is a 403 `second_factor_required` until 2FA is on, and it cannot be turned off."""
from __future__ import annotations

import time

import pyotp

from hub.web import BEFORE_2FA
from tests.hub.harness import PASSWORD, HubHarness


async def _limited(hub):
    user = await hub.user(totp=False)
    client = hub.client()
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    body = await r.get_json()
    assert r.status_code == 200 and body["setup_required"] is True and body["mfa_required"] is False
    return user, client, {"X-CSRF-Token": body["csrf_token"]}


async def test_a_user_without_2fa_reaches_only_the_set_up_until_it_is_on(hub):
    t = await hub.tenant()
    user, client, csrf = await _limited(hub)
    for method, path, body in [
            ("GET", "/api/v1/tenants", None), ("POST", "/api/v1/tenants", {"name": "x"}), ("GET", t.base, None),
            ("GET", "/api/v1/sessions", None), ("POST", "/auth/password", {"new_password": "x" * 16}),
            ("POST", "/api/v1/account/email", {"new_email": "a@b.co"}),
            ("POST", t.base + "/tokens", {"name": "x", "scopes": ["read"]})]:
        r = await client.open(path, method=method, headers=csrf, json=body)
        body = await r.get_json()
        assert r.status_code == 403 and body["error"] == "second_factor_required", (path, r.status_code, body)
        assert "2FA" in body["message"] and body["setup"] == "/auth/2fa/setup"
    me = await (await client.get("/auth/me")).get_json()
    assert me["totp"] is False and me["setup_required"] is True
    assert (await client.get("/auth/me/export")).status_code == 200  # their data, still theirs to take

    uri = (await (await client.post("/auth/2fa/setup", headers=csrf)).get_json())["otpauth_uri"]
    r = await client.post("/auth/2fa/confirm", headers=csrf, json={"code": pyotp.parse_uri(uri).now()})
    assert r.status_code == 200 and len((await r.get_json())["recovery_codes"]) == 10
    r = await client.post("/api/v1/tenants", headers=csrf, json={"name": "mine"})
    assert r.status_code == 201  # the same session, now that 2FA is on
    assert (await (await client.get("/auth/me")).get_json())["setup_required"] is False


async def test_2fa_cannot_be_turned_off_and_tokens_need_it(hub):
    t = await hub.tenant()
    s = await hub.login(t.user.email)
    r = await s.post("/auth/2fa/disable", json={"code": await hub.code(t.user.email)})
    assert r.status_code == 409 and "move it" in (await r.get_json())["message"]
    # A token made by a user with 2FA works; a user without it cannot make one (above).
    assert (await t.token.get(t.base)).status_code == 200


async def test_the_relaxing_setting_lets_an_account_without_2fa_in(tmp_path):
    async with HubHarness(tmp_path, allow_accounts_without_2fa=True) as hub:
        user = await hub.user(totp=False)
        s = await hub.login(user.email)
        assert (await s.post("/api/v1/tenants", json={"name": "dev"})).status_code == 201


async def test_a_stale_limited_session_must_confirm_before_the_set_up(hub):
    user, client, csrf = await _limited(hub)
    from hub.models import Session

    await Session.filter(user_id=user.id).update(created_at=_an_hour_ago())
    r = await client.post("/auth/2fa/setup", headers=csrf)
    assert r.status_code == 403 and "reauth" in (await r.get_json())["message"]
    r = await client.post("/auth/reauth", headers=csrf, json={"password": PASSWORD})
    assert r.status_code == 200
    csrf = {"X-CSRF-Token": (await r.get_json())["csrf_token"]}
    assert (await client.post("/auth/2fa/setup", headers=csrf)).status_code == 200


def _an_hour_ago():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)


def test_every_endpoint_the_limited_session_reaches_exists(hub):
    names = set(hub.app.view_functions)
    assert BEFORE_2FA <= names, BEFORE_2FA - names
