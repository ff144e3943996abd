"""The API behind the account and tenant pages (issue 13): join tokens with uses,
invitations accepted by sign-up and revoked, members removed with the last owner kept,
tenants renamed and deleted, sessions listed and ended, password resets. Each hostile
input is a 4xx, never a 500, and nothing reaches another tenant."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from hub.models import Agent, Membership, OutboxMessage, PasswordReset, Session, Tenant, User
from hub.services import outbox, resets
from tests.hub.harness import PASSWORD, HubHarness
from tests.hub.smtp_inbox import smtp_inbox

HOSTILE_TEXT = ["", "x" * 100_000, "\u0000", "../../etc/passwd", "<script>", "' OR 1=1 --", "%00", "😀" * 300]


async def _join(hub, join: str, hostname: str = "h") -> int:
    r = await hub.client().post("/agent/v1/enroll", json={"join_token": join, "inventory": {"hostname": hostname}})
    return r.status_code


async def test_a_join_token_enrols_its_number_of_servers_even_in_parallel_and_can_be_revoked(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600, "max_uses": 3})
    assert r.status_code == 201
    body = await r.get_json()
    assert body["max_uses"] == 3 and r.headers["Cache-Control"] == "no-store"
    statuses = await asyncio.gather(*(_join(hub, body["token"], f"h{i}") for i in range(8)))
    assert sorted(statuses) == [201] * 3 + [401] * 5
    listed = (await (await t.token.get(t.base + "/join-tokens")).get_json())["join_tokens"]
    assert listed[0]["uses"] == 3 and listed[0]["state"] == "used up" and "token" not in listed[0]

    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600, "max_uses": 5})
    second = await r.get_json()
    r = await t.token.delete(f"{t.base}/join-tokens/{second['id']}")
    assert r.status_code == 200 and (await r.get_json())["state"] == "revoked"
    assert await _join(hub, second["token"]) == 401
    assert await Agent.filter(tenant_id=t.id).count() == 3


@pytest.mark.parametrize("body", [{"ttl_s": 600, "max_uses": 0}, {"ttl_s": 600, "max_uses": 10**30},
                                  {"ttl_s": 600, "max_uses": "three"}, {"ttl_s": 600, "max_uses": -1},
                                  {"ttl_s": 600, "max_uses": 1001}])
async def test_join_token_uses_out_of_bounds_are_400(hub, body):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/join-tokens", json=body)
    assert r.status_code == 400


async def test_sign_up_by_invitation_makes_the_account_once(hub):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/invitations", json={"email": "New.Person@example.com", "role": "operator"})
    token = (await r.get_json())["token"]
    client = hub.client()
    r = await client.post("/api/v1/invitations/sign-up", json={"token": token, "password": "short"})
    assert r.status_code == 400
    attempts = await asyncio.gather(*(client.post("/api/v1/invitations/sign-up",
                                                  json={"token": token, "password": PASSWORD}) for _ in range(5)))
    assert sorted(a.status_code for a in attempts)[0] == 201
    assert [a.status_code for a in attempts].count(201) == 1
    assert all(a.status_code in (201, 404, 409) for a in attempts)
    user = await User.get(email="new.person@example.com")
    assert (await Membership.get(user_id=user.id)).role == "operator"
    session = await hub.login("new.person@example.com")  # no 2FA yet: only its set-up
    r = await session.get(t.base)
    assert r.status_code == 403 and (await r.get_json())["error"] == "second_factor_required"
    await hub.enrol(user)
    session = await hub.login("new.person@example.com")
    assert (await session.get(t.base)).status_code == 200
    listed = (await (await t.owner.get(t.base + "/invitations")).get_json())["invitations"]
    assert listed[0]["state"] == "accepted"
    r = await t.owner.delete(f"{t.base}/invitations/{listed[0]['id']}")
    assert r.status_code == 409  # accepted: remove the member instead


async def test_a_revoked_invitation_neither_signs_up_nor_joins(hub):
    t = await hub.tenant()
    existing = await hub.user("someone@example.com")
    r = await t.owner.post(t.base + "/invitations", json={"email": existing.email, "role": "viewer"})
    token = (await r.get_json())["token"]
    r = await hub.client().post("/api/v1/invitations/sign-up", json={"token": token, "password": PASSWORD})
    assert r.status_code == 409  # the email has an account: sign in and accept instead
    inv = (await (await t.owner.get(t.base + "/invitations")).get_json())["invitations"][0]
    assert (await t.owner.delete(f"{t.base}/invitations/{inv['id']}")).status_code == 200
    session = await hub.login(existing.email)
    r = await session.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 404
    assert not await Membership.exists(user_id=existing.id)


@pytest.mark.parametrize("token", HOSTILE_TEXT + [None, 5, ["x"], {"a": 1}])
async def test_hostile_sign_up_tokens_are_4xx(hub, token):
    r = await hub.client().post("/api/v1/invitations/sign-up", json={"token": token, "password": PASSWORD})
    assert 400 <= r.status_code < 500 and r.status_code in (400, 404)


async def test_members_removed_but_the_last_owner_stays(hub):
    t = await hub.tenant()
    other = await hub.tenant("other")
    admin = await hub.user()
    await Membership.create(user_id=admin.id, tenant_id=t.id, role="admin")
    admin_session = await hub.login(admin.email)
    members = (await (await t.owner.get(t.base + "/members")).get_json())["members"]
    owner_m = next(m for m in members if m["role"] == "owner")
    admin_m = next(m for m in members if m["role"] == "admin")
    assert (await admin_session.delete(f"{t.base}/members/{owner_m['id']}")).status_code == 403
    assert (await t.owner.delete(f"{t.base}/members/{owner_m['id']}")).status_code == 409
    r = await t.owner.patch(f"{t.base}/members/{owner_m['id']}", json={"role": "admin"})
    assert r.status_code == 409
    other_m = (await (await other.owner.get(other.base + "/members")).get_json())["members"][0]
    assert (await t.owner.delete(f"{t.base}/members/{other_m['id']}")).status_code == 404
    assert (await t.owner.delete(f"{t.base}/members/{2**40}")).status_code in (404, 405)  # no route matches
    assert (await t.owner.delete(f"{t.base}/members/{admin_m['id']}")).status_code == 200
    assert (await admin_session.get(t.base)).status_code == 404
    assert await Membership.filter(tenant_id=other.id).count() == 1


async def test_rename_and_delete_a_tenant(hub):
    t = await hub.tenant()
    other = await hub.tenant("other")
    for bad in ["", "x" * 201, "\u0000x", None, 7]:
        r = await t.owner.patch(t.base, json={"name": bad})
        assert r.status_code == 400, bad
    r = await t.owner.patch(t.base, json={"name": "Acme Hosting"})
    assert r.status_code == 200 and (await Tenant.get(id=t.id)).name == "Acme Hosting"
    assert (await t.token.delete(t.base)).status_code == 403  # tokens never administer
    agent = await _join_one(t)
    r = await t.owner.delete(t.base)
    assert r.status_code == 409  # an enrolled agent: revoke it first
    assert (await t.owner.post(f"{t.base}/agents/{agent}/revoke")).status_code == 200
    assert (await other.owner.delete(t.base)).status_code == 404
    r = await t.owner.delete(t.base)
    assert r.status_code == 200
    assert not await Tenant.exists(id=t.id)
    assert await Tenant.exists(id=other.id)
    assert (await other.token.get(other.base + "/agents")).status_code == 200


async def _join_one(t) -> str:
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600})
    r = await t.hub.client().post("/agent/v1/enroll", json={"join_token": (await r.get_json())["token"],
                                                            "inventory": {"hostname": "x"}})
    return (await r.get_json())["agent_id"]


async def test_sessions_are_listed_and_ended_one_by_one_or_everywhere(hub):
    user = await hub.user()
    other_user = await hub.user()
    a = await hub.login(user.email)
    b = await hub.login(user.email)
    stranger = await hub.login(other_user.email)
    listed = (await (await a.get("/api/v1/sessions")).get_json())["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    theirs = (await (await stranger.get("/api/v1/sessions")).get_json())["sessions"][0]["id"]
    assert (await a.delete(f"/api/v1/sessions/{theirs}")).status_code == 404  # not mine
    for bad in ["zz", "0" * 16, "g" * 16, "%2e%2e", "a" * 64]:
        assert (await a.delete(f"/api/v1/sessions/{bad}")).status_code == 404
    assert (await a.delete("/api/v1/sessions/" + "a" * 65)).status_code == 404
    b_id = next(s["id"] for s in listed if not s["current"])
    assert (await a.delete(f"/api/v1/sessions/{b_id}")).status_code == 200
    assert (await b.get("/api/v1/sessions")).status_code == 401
    c = await hub.login(user.email)
    r = await a.delete("/api/v1/sessions")
    assert r.status_code == 200 and (await r.get_json())["ended"] == 2
    assert (await c.get("/api/v1/sessions")).status_code == 401
    assert (await a.get("/api/v1/sessions")).status_code == 401
    assert (await stranger.get("/api/v1/sessions")).status_code == 200
    t = await hub.tenant()
    assert (await t.token.get("/api/v1/sessions")).status_code == 401  # a token has no sessions


async def test_a_password_reset_is_emailed_once_works_once_and_says_nothing_about_accounts(hub):
    user = await hub.user("resetme@example.com")
    session = await hub.login(user.email)
    client = hub.client()
    known = await client.post("/api/v1/password-reset", json={"email": "ResetMe@example.com"})
    unknown = await client.post("/api/v1/password-reset", json={"email": "nobody@example.com"})
    malformed = await client.post("/api/v1/password-reset", json={"email": "not an address"})
    assert known.status_code == unknown.status_code == malformed.status_code == 202
    assert await known.get_json() == await unknown.get_json() == await malformed.get_json()
    mails = await OutboxMessage.filter(kind="email", target=user.email)
    assert len(mails) == 1 and await OutboxMessage.filter(target="nobody@example.com").count() == 0
    link = next(w for w in mails[0].body["text"].split() if "/reset/" in w)
    secret = link.rsplit("/", 1)[1]
    assert link.startswith(hub.config.public_url)
    r = await client.post("/api/v1/password-reset/confirm", json={"token": secret, "new_password": "short"})
    assert r.status_code == 400
    r = await client.post("/api/v1/password-reset/confirm", json={"token": secret, "new_password": "a new long password"})
    assert r.status_code == 200
    assert (await session.get("/api/v1/sessions")).status_code == 401  # every session ended
    r = await client.post("/api/v1/password-reset/confirm", json={"token": secret, "new_password": "another long one"})
    assert r.status_code == 404  # single use
    await hub.login(user.email, "a new long password")


async def test_a_reset_link_expires_and_a_newer_one_replaces_it(hub):
    user = await hub.user()
    first = await resets.issue_link(hub.rt, user.email)
    second = await resets.issue_link(hub.rt, user.email)
    client = hub.client()
    r = await client.post("/api/v1/password-reset/confirm",
                          json={"token": first.rsplit("/", 1)[1], "new_password": "a new long password"})
    assert r.status_code == 404
    await PasswordReset.filter(user_id=user.id).update(expires_at=dt.datetime.now(dt.timezone.utc))
    r = await client.post("/api/v1/password-reset/confirm",
                          json={"token": second.rsplit("/", 1)[1], "new_password": "a new long password"})
    assert r.status_code == 404


async def test_reset_requests_are_throttled_alike_for_known_and_unknown_addresses(hub):
    await hub.user("known@example.com")
    client = hub.client()
    for email in ("known@example.com", "unknown@example.com"):
        statuses = [(await client.post("/api/v1/password-reset", json={"email": email})).status_code
                    for _ in range(hub.config.login_max_failures + 1)]
        assert statuses[-1] == 429 and set(statuses[:-1]) == {202}, (email, statuses)


@pytest.mark.parametrize("body", [{"token": t, "new_password": PASSWORD} for t in HOSTILE_TEXT]
                         + [{"token": "x"}, {"email": "a@b"}, [], "x", {"token": "x", "new_password": "y" * 2000}])
async def test_hostile_reset_confirmations_are_4xx(hub, body):
    r = await hub.client().post("/api/v1/password-reset/confirm", json=body)
    assert r.status_code in (400, 404)


async def test_the_reset_email_reaches_a_real_smtp_server_and_its_link_is_not_kept(tmp_path):
    with smtp_inbox() as inbox:
        async with HubHarness(tmp_path, smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_starttls=False,
                              mail_from="hub@bulwark.example") as hub:
            user = await hub.user()
            r = await hub.client().post("/api/v1/password-reset", json={"email": user.email})
            assert r.status_code == 202
            await outbox.deliver_due(hub.rt)  # (or the hub's own job did already)
            sent = await OutboxMessage.get(target=user.email)
            assert sent.state == "sent" and "/reset/" not in str(sent.body), (sent.state, sent.last_error)
        received = inbox.wait_for()
    assert received[0]["To"] == user.email and received[0]["Subject"] == "[Bulwark] Reset your password"
    assert "/reset/" in received[0].get_payload()
