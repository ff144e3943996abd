"""Correcting one's email (hub.services.email_change): a fresh proof, a single-use link to
the new address (through the outbox, to a real SMTP server), the old address told, an audit
entry, and every hostile input a clear 4xx."""
from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest

from hub.models import AuditEntry, EmailChange, OutboxMessage, User
from hub.services import email_change, outbox
from tests.hub.harness import HubHarness
from tests.hub.smtp_inbox import smtp_inbox


async def _fresh(hub, email):
    s = await hub.login(email)  # a sign-in just now is a fresh proof for 5 minutes
    return s


def _secret(message: OutboxMessage) -> str:
    return re.search(r"/account/email/(\S+)", message.body["text"]).group(1)


async def _ask(hub, s, new: str):
    r = await s.post("/api/v1/account/email", json={"new_email": new})
    assert r.status_code == 202, await r.get_data(as_text=True)
    return _secret(await OutboxMessage.filter(target=new.lower()).order_by("-created_at").first())


async def test_the_email_changes_through_the_link_and_the_old_address_is_told(hub):
    t = await hub.tenant()
    old = t.user.email
    s = await _fresh(hub, old)
    other = await hub.login(old)
    secret = await _ask(hub, s, "New.Me@Example.org")
    assert (await User.get(id=t.user.id)).email == old  # nothing changes before the link is used
    r = await s.post("/api/v1/account/email/confirm", json={"token": secret})
    assert r.status_code == 200, await r.get_data(as_text=True)
    assert (await r.get_json())["email"] == "new.me@example.org"
    assert (await User.get(id=t.user.id)).email == "new.me@example.org"
    told = await OutboxMessage.get(target=old)
    assert "n…@example.org" in told.body["text"] and "new.me@" not in told.body["text"]
    assert (await other.get("/auth/me")).status_code == 401  # other sessions ended
    assert (await s.get("/auth/me")).status_code == 200
    actions = await AuditEntry.filter(action__startswith="auth.email").order_by("seq").values_list("action", flat=True)
    assert actions == ["auth.email.request", "auth.email.change"]
    # Replayed: the link worked once.
    r = await s.post("/api/v1/account/email/confirm", json={"token": secret})
    assert r.status_code == 404
    # Signing in goes by the new address now.
    hub.totp["new.me@example.org"] = hub.totp[old]
    await hub.login("new.me@example.org")


async def test_a_change_needs_a_fresh_proof_and_a_free_well_formed_address(hub):
    t = await hub.tenant()
    taken = await hub.user()
    s = await _fresh(hub, t.user.email)
    for bad in ["not-an-email", "a@b", "two@@example.com", "a b@example.com", "x@exa\r\nmple.com",
                "a@" + "b" * 300 + ".com", "", "@example.com", "x@.example.com"]:
        r = await s.post("/api/v1/account/email", json={"new_email": bad})
        assert r.status_code == 400, (bad, r.status_code)
    r = await s.post("/api/v1/account/email", json={"new_email": "x" * 5000 + "@example.com"})
    assert r.status_code == 400
    r = await s.post("/api/v1/account/email", json={"new_email": taken.email.upper()})
    assert r.status_code == 409
    r = await s.post("/api/v1/account/email", json={"new_email": t.user.email})
    assert r.status_code == 400
    from hub.models import Session

    await Session.filter(user_id=t.user.id).update(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    r = await s.post("/api/v1/account/email", json={"new_email": "later@example.com"})
    assert r.status_code == 403 and "reauth" in (await r.get_json())["message"]
    # An API token is no person: 401.
    r = await t.token.post("/api/v1/account/email", json={"new_email": "tok@example.com"})
    assert r.status_code == 401


async def test_expired_foreign_and_malformed_links_are_404(hub):
    a = await hub.tenant("a")
    b = await hub.tenant("b")
    sa, sb = await _fresh(hub, a.user.email), await _fresh(hub, b.user.email)
    secret = await _ask(hub, sa, "a.new@example.com")
    r = await sb.post("/api/v1/account/email/confirm", json={"token": secret})  # another user's link
    assert r.status_code == 404
    for junk in ["", "x", "a" * 200]:
        assert (await sa.post("/api/v1/account/email/confirm", json={"token": junk})).status_code == 404
    assert (await sa.post("/api/v1/account/email/confirm", json={"token": "a" * 201})).status_code == 400
    await EmailChange.filter(user_id=a.user.id).update(expires_at=dt.datetime.now(dt.timezone.utc))
    assert (await sa.post("/api/v1/account/email/confirm", json={"token": secret})).status_code == 404
    # Asking again replaces the earlier link.
    first = await _ask(hub, sa, "a.one@example.com")
    second = await _ask(hub, sa, "a.two@example.com")
    assert (await sa.post("/api/v1/account/email/confirm", json={"token": first})).status_code == 404
    assert (await sa.post("/api/v1/account/email/confirm", json={"token": second})).status_code == 200


async def test_two_confirmations_at_once_change_it_once_and_a_taken_address_is_refused(hub):
    t = await hub.tenant()
    s = await _fresh(hub, t.user.email)
    secret = await _ask(hub, s, "race@example.com")
    answers = await asyncio.gather(*(s.post("/api/v1/account/email/confirm", json={"token": secret})
                                     for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 404, 404, 404]
    # Taken between the asking and the link: 409, and nothing changes.
    u = await hub.tenant("u")
    su = await _fresh(hub, u.user.email)
    secret = await _ask(hub, su, "wanted@example.com")
    await hub.user("wanted@example.com")
    r = await su.post("/api/v1/account/email/confirm", json={"token": secret})
    assert r.status_code == 409 and (await User.get(id=u.user.id)).email == u.user.email


async def test_the_link_reaches_a_real_smtp_server(tmp_path):
    with smtp_inbox() as inbox:
        async with HubHarness(tmp_path, smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_starttls=False,
                              mail_from="hub@bulwark.example") as hub:
            user = await hub.user()
            s = await hub.login(user.email)
            await _ask(hub, s, "inbox@example.com")
            await outbox.deliver_due(hub.rt)
        received = inbox.wait_for()
    assert received[0]["To"] == "inbox@example.com"
    assert "/account/email/" in received[0].get_payload()


@pytest.mark.parametrize("address", ["a@b.co", "first.last+tag@sub.example.com"])
def test_well_formed_addresses_pass(address):
    assert email_change.check_address(address.upper()) == address.lower()
