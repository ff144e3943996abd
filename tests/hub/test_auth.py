from __future__ import annotations

import datetime
import time

import pyotp

from hub.models import ApiToken, Session, User
from tests.hub.harness import PASSWORD, HubHarness


def _cookie_header(response) -> str:
    return next(v for k, v in response.headers.items() if k.lower() == "set-cookie")


async def test_login_sets_a_hardened_session_cookie_with_a_new_id_each_time(hub):
    user = await hub.user()
    client = hub.client()
    r1 = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r1.status_code == 200
    cookie = _cookie_header(r1)
    assert cookie.startswith("bulwark_session=")  # plain http on loopback: no __Host-
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    r2 = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert _cookie_header(r2).split(";")[0] != cookie.split(";")[0]
    assert await Session.filter(user_id=user.id).count() == 1  # the old session is gone


async def test_cookie_is_secure_and_host_prefixed_outside_localhost(tmp_path):
    async with HubHarness(tmp_path, public_url="https://hub.example.com") as hub:
        user = await hub.user()
        r = await hub.client().post("/auth/login", json={"email": user.email, "password": PASSWORD},
                                    scheme="https")
        cookie = _cookie_header(r)
        assert cookie.startswith("__Host-bulwark_session=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie


async def test_wrong_password_and_unknown_user_look_alike(hub):
    user = await hub.user()
    client = hub.client()
    a = await client.post("/auth/login", json={"email": user.email, "password": "wrong password!"})
    b = await client.post("/auth/login", json={"email": "nobody@example.com", "password": "x" * 12})
    assert a.status_code == b.status_code == 401
    assert await a.get_json() == await b.get_json()


async def test_login_is_throttled_per_account(hub):
    user = await hub.user()
    client = hub.client()
    for _ in range(hub.config.login_max_failures):
        r = await client.post("/auth/login", json={"email": user.email, "password": "wrong password!"})
        assert r.status_code == 401
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0


async def test_login_is_throttled_per_address(hub):
    client = hub.client()
    for i in range(hub.config.login_max_failures * 4):
        await client.post("/auth/login", json={"email": f"x{i}@example.com", "password": "wrong password!"})
    user = await hub.user()
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 429


async def test_cookie_writes_need_the_csrf_token(hub):
    user = await hub.user()
    s = await hub.login(user.email)
    r = await s.client.post("/api/v1/tenants", json={"name": "acme"})
    assert r.status_code == 403
    r = await s.client.post("/api/v1/tenants", json={"name": "acme"}, headers={"X-CSRF-Token": "nope"})
    assert r.status_code == 403
    r = await s.post("/api/v1/tenants", json={"name": "acme"})
    assert r.status_code == 201


async def test_logout_ends_the_session_on_the_server(hub):
    user = await hub.user(totp=False)  # sets 2FA up below
    client = hub.client()
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    cookie = _cookie_header(r).split(";")[0]
    csrf = (await r.get_json())["csrf_token"]
    replay = hub.app.test_client(use_cookies=False)
    assert (await replay.get("/auth/me", headers={"Cookie": cookie})).status_code == 200
    assert (await client.post("/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
    # A copy of the cookie kept by an attacker is worthless once signed out.
    assert (await replay.get("/auth/me", headers={"Cookie": cookie})).status_code == 401


async def _enable_totp(hub, s):
    uri = (await (await s.post("/auth/2fa/setup")).get_json())["otpauth_uri"]
    totp = pyotp.parse_uri(uri)
    r = await s.post("/auth/2fa/confirm", json={"code": totp.now()})
    assert r.status_code == 200, await r.get_data(as_text=True)
    return totp, (await r.get_json())["recovery_codes"]


async def test_totp_second_factor_and_one_use_per_step(hub):
    user = await hub.user(totp=False)  # sets 2FA up below
    s = await hub.login(user.email)
    totp, codes = await _enable_totp(hub, s)
    assert len(codes) == 10

    client = hub.client()
    r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    body = await r.get_json()
    assert body["mfa_required"] is True
    # The half-signed-in session is good for nothing else.
    assert (await client.get("/api/v1/tenants")).status_code == 401
    # The code used to confirm set-up was this step's: it cannot be used again now.
    await User.filter(id=user.id).update(totp_last_step=None)
    step_code = totp.at(time.time())
    r = await client.post("/auth/second-factor", json={"code": step_code},
                          headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 200
    assert (await client.get("/api/v1/tenants")).status_code == 200

    other = hub.client()
    r = await other.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    csrf = (await r.get_json())["csrf_token"]
    r = await other.post("/auth/second-factor", json={"code": step_code}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401  # replay in the same time step


async def test_recovery_codes_work_once(hub):
    user = await hub.user(totp=False)  # sets 2FA up below
    s = await hub.login(user.email)
    _, codes = await _enable_totp(hub, s)
    for expected in (200, 401):
        client = hub.client()
        r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        csrf = (await r.get_json())["csrf_token"]
        r = await client.post("/auth/second-factor", json={"code": codes[0]}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == expected


async def test_api_tokens_are_scoped_hashed_shown_once_and_revocable(hub):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/tokens", json={"name": "ci", "scopes": ["read"]})
    body = await r.get_json()
    credential = body["token"]
    stored = await ApiToken.get(id=body["id"])
    assert credential.split("_", 2)[2] not in stored.secret_hash
    listed = await (await t.owner.get(t.base + "/tokens")).get_json()
    assert all("token" not in tok for tok in listed["tokens"])

    headers = {"Authorization": f"Bearer {credential}"}
    client = hub.client()
    assert (await client.get(t.base, headers=headers)).status_code == 200
    assert (await client.get(t.base + "/tokens", headers=headers)).status_code == 403
    r = await t.owner.delete(f"{t.base}/tokens/{body['id']}")
    assert r.status_code == 200
    r = await client.get(t.base, headers=headers)
    assert r.status_code == 401 and "revoked" in (await r.get_json())["message"]


async def test_expired_token_is_refused(hub):
    t = await hub.tenant()
    tok = await t.make_token(["read"], expires_in_s=1)
    await ApiToken.filter(tenant_id=t.id, scopes=["read"]).update(
        expires_at=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    r = await tok.get(t.base)
    assert r.status_code == 401 and "expired" in (await r.get_json())["message"]


async def test_a_token_cannot_grant_more_than_its_maker_has(hub):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/tokens", json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 400


async def test_invitation_and_roles(hub):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/invitations", json={"email": "viewer@example.com", "role": "viewer"})
    token = (await r.get_json())["token"]
    await hub.user("viewer@example.com")
    v = await hub.login("viewer@example.com")
    assert (await v.get(t.base)).status_code == 404  # not yet a member
    r = await v.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200
    assert (await v.get(t.base)).status_code == 200
    r = await v.post(t.base + "/invitations", json={"email": "x@example.com", "role": "viewer"})
    assert r.status_code == 403
    r = await v.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 404  # single use
    members = (await (await t.owner.get(t.base + "/members")).get_json())["members"]
    owner = next(m for m in members if m["role"] == "owner")
    r = await t.owner.patch(f"{t.base}/members/{owner['id']}", json={"role": "viewer"})
    assert r.status_code == 409  # the last owner stays
