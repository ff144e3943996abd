"""The account and tenant pages without a browser: no inline script or style, a token on
every form, secrets shown once and never cached, CSRF refused, hostile links 404 (never
500), and the enrolment command that keeps the join token out of argv."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import re

import pyotp
import pytest

from hub.models import Membership, OutboxMessage, Session
from hub.services import enrolment
from tests.hub.harness import PASSWORD, HubHarness
from tests.panel.test_pages import InlineFinder, _token


def run(coro):
    return asyncio.run(coro)


def _clean(body: str, path: str) -> None:
    finder = InlineFinder()
    finder.feed(body)
    assert finder.problems == [], (path, finder.problems)
    for form in finder.forms:
        if form["method"] == "post":
            assert "csrf_token" in form["inputs"], (path, form)


async def _login_form_token(client, path: str) -> tuple[str, str]:
    r = await client.get(path)
    body = await r.get_data(as_text=True)
    return body, re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def test_every_new_page_is_clean_and_every_post_form_has_a_token(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            r = await t.owner.post(t.base + "/invitations", json={"email": "new@example.com", "role": "viewer"})
            invite = (await r.get_json())["token"]
            from hub.services import resets

            link = await resets.issue_link(h.rt, t.user.email)
            pages = ["/account", f"/t/{t.id}/members", f"/t/{t.id}/settings", f"/t/{t.id}/enrol"]
            for path in pages:
                r = await t.owner.client.get(path)
                assert r.status_code == 200, path
                _clean(await r.get_data(as_text=True), path)
            anonymous = h.client()
            for path in ["/reset", f"/invite/{invite}", "/reset/" + link.rsplit("/", 1)[1], "/login"]:
                r = await anonymous.get(path)
                assert r.status_code == 200, path
                _clean(await r.get_data(as_text=True), path)

    run(go())


def test_account_writes_need_the_csrf_token_and_a_fresh_proof(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            c = t.owner.client
            for path in ["/account/password", "/account/2fa/setup", "/account/confirm", "/account/sessions/end-all",
                         f"/t/{t.id}/tokens", f"/t/{t.id}/enrol", f"/t/{t.id}/invitations"]:
                r = await c.post(path, form={"new_password": "x" * 20, "repeat": "x" * 20, "name": "n"})
                assert r.status_code == 403, path
            # Fresh right after sign-in; stale later: the password form then says why.
            await Session.filter(user_id=t.user.id).update(created_at="2000-01-01T00:00:00+00:00")
            r = await c.post("/account/password", form={"csrf_token": t.owner.csrf, "new_password": "a" * 14,
                                                        "repeat": "a" * 14})
            assert r.status_code == 403 and "confirm it is you" in (await r.get_data(as_text=True)).lower()

    run(go())


def test_2fa_set_up_shows_a_qr_code_and_the_codes_only_in_the_answer_that_made_them(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            c, csrf = t.owner.client, t.owner.csrf
            r = await c.post("/account/2fa/setup", form={"csrf_token": csrf})
            body = await r.get_data(as_text=True)
            assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
            assert re.search(r'<img class="qr" src="data:image/svg\+xml[;,]', body)
            secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', body).group(1).replace(" ", "")
            r = await c.post("/account/2fa/confirm", form={"csrf_token": csrf, "code": "000000"})
            assert r.status_code == 400 and "wrong code" in await r.get_data(as_text=True)
            r = await c.post("/account/2fa/confirm", form={"csrf_token": csrf, "code": pyotp.TOTP(secret).now()})
            body = await r.get_data(as_text=True)
            codes = re.findall(r"<li><code>([0-9a-f]{10})</code></li>", body)
            assert len(codes) == 10 and r.headers["Cache-Control"] == "no-store"
            again = await (await c.get("/account")).get_data(as_text=True)
            assert not any(code in again for code in codes) and "totp-secret" not in again

    run(go())


def test_sessions_are_listed_and_one_or_all_signed_out(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            other = await h.login(t.user.email)
            stranger = await h.tenant("other")
            body = await (await t.owner.client.get("/account")).get_data(as_text=True)
            handles = re.findall(r'/account/sessions/([0-9a-f]{16})/end', body)
            assert len(handles) == 1  # the other session; this one is marked, not a button
            stranger_body = await (await stranger.owner.client.get("/account")).get_data(as_text=True)
            assert handles[0] not in stranger_body
            r = await stranger.owner.client.post(f"/account/sessions/{handles[0]}/end",
                                                 form={"csrf_token": stranger.owner.csrf})
            assert r.status_code == 302 and (await other.get("/api/v1/sessions")).status_code == 200
            for bad in ["zz", "../x", "0" * 16, "f" * 64]:
                r = await t.owner.client.post(f"/account/sessions/{bad}/end", form={"csrf_token": t.owner.csrf})
                assert r.status_code in (302, 404), bad
            await t.owner.client.post(f"/account/sessions/{handles[0]}/end", form={"csrf_token": t.owner.csrf})
            assert (await other.get("/api/v1/sessions")).status_code == 401
            r = await t.owner.client.post("/account/sessions/end-all", form={"csrf_token": t.owner.csrf})
            assert r.status_code == 302 and "/login" in r.headers["Location"]
            assert await Session.filter(user_id=t.user.id).count() == 0
            assert await Session.filter(user_id=stranger.user.id).count() == 1

    run(go())


def test_enrolment_shows_the_command_once_with_the_token_on_stdin(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            r = await t.owner.client.post(f"/t/{t.id}/enrol", form={"csrf_token": t.owner.csrf, "uses": "2",
                                                                    "ttl_min": "30", "labels": "web eu"})
            body = html.unescape(await r.get_data(as_text=True))
            assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
            command = re.search(r'<textarea id="enrol-command"[^>]*>(.*?)</textarea>', body, re.S).group(1)
            token = re.search(r"printf '%s\\n' (bwj_\S+) \|", command).group(1)
            assert "--token-stdin" in command and "--token " not in command
            assert "--allow-insecure-http" in command and h.config.public_url in command
            assert token not in (await (await t.owner.client.get(f"/t/{t.id}/enrol")).get_data(as_text=True))
            for form in [{"uses": "0"}, {"uses": "1001"}, {"uses": "x"}, {"uses": "9" * 40}, {"ttl_min": "61"},
                         {"ttl_min": "-1"}, {"labels": "BAD LABEL!"}]:
                r = await t.owner.client.post(f"/t/{t.id}/enrol", form={"csrf_token": t.owner.csrf, **form})
                assert r.status_code == 302, form  # back to the page with the reason

    run(go())


def test_the_command_pins_the_hub_ca_when_tls_is_set(tmp_path):
    from tests.agent.test_tls import make_ca, make_leaf, pem

    ca_key, ca = make_ca("hub ca")
    _, leaf = make_leaf(ca_key, ca)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pem(leaf) + pem(ca))
    from cryptography.hazmat.primitives.serialization import Encoding

    from hub.config import load_config

    expected = hashlib.sha256(ca.public_bytes(Encoding.DER)).hexdigest()
    config = load_config(env={}, data_dir=str(tmp_path), public_url="https://hub.example:8443",
                         tls_certfile=str(chain), tls_keyfile=str(chain))
    command = enrolment.enrol_command(config, "bwj_abc")
    assert f"--hub-ca-sha256 {expected}" in command and "--allow-insecure-http" not in command
    alone = tmp_path / "leaf.pem"
    alone.write_bytes(pem(leaf))
    assert enrolment.ca_pin(dataclasses.replace(config, tls_certfile=str(alone))) is None  # no CA in the file
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pem(ca))
    assert enrolment.ca_pin(dataclasses.replace(config, tls_ca_certfile=str(ca_file))) == expected
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate")
    assert enrolment.ca_pin(dataclasses.replace(config, tls_ca_certfile=str(garbage))) is None


def test_invitation_makes_the_account_then_asks_for_2fa(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            r = await t.owner.client.post(f"/t/{t.id}/invitations", form={"csrf_token": t.owner.csrf,
                                                                          "email": "new@example.com",
                                                                          "role": "operator"})
            body = html.unescape(await r.get_data(as_text=True))
            link = re.search(r'id="invite-link"[^>]*value="([^"]+)"', body).group(1)
            path = link.split("8443", 1)[1]
            c = h.client()
            page, token = await _login_form_token(c, path)
            assert 'value="new@example.com"' in page
            r = await c.post(path, form={"password": PASSWORD, "repeat": PASSWORD})
            assert r.status_code == 403  # no form token
            r = await c.post(path, form={"csrf_token": token, "password": PASSWORD, "repeat": "different!!!!"})
            assert r.status_code == 400
            r = await c.post(path, form={"csrf_token": token, "password": PASSWORD, "repeat": PASSWORD})
            assert r.status_code == 302 and r.headers["Location"].startswith("/account")
            account = await (await c.get("/account")).get_data(as_text=True)
            assert "Set up 2FA" in account
            assert await Membership.filter(tenant_id=t.id, role="operator").count() == 1
            r = await h.client().get(path)
            assert r.status_code == 404  # used

    run(go())


@pytest.mark.parametrize("path", ["/invite/x", "/invite/" + "a" * 199, "/reset/x", "/reset/" + "%00" * 10,
                                  "/invite/%2e%2e", "/reset/" + "b" * 300])
def test_hostile_links_are_404(tmp_path, path):
    async def go():
        async with HubHarness(tmp_path) as h:
            r = await h.client().get(path)
            assert r.status_code == 404

    run(go())


def test_the_reset_form_says_the_same_for_any_address(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            user = await h.user("known@example.com")
            answers = []
            for email in ("known@example.com", "unknown@example.com", "garbage"):
                c = h.client()
                _, token = await _login_form_token(c, "/reset")
                r = await c.post("/reset", form={"csrf_token": token, "email": email})
                answers.append((r.status_code, r.headers.get("Location")))
            assert len(set(answers)) == 1
            assert await OutboxMessage.filter(target=user.email).count() == 1
            assert await OutboxMessage.filter(kind="email").count() == 1

    run(go())


def test_a_user_without_2fa_is_sent_to_the_set_up_and_sees_why(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            user = await h.user(totp=False)
            s = await h.login(user.email)
            for path in ["/", f"/t/{t.id}/", "/account/sessions/end-all-not-a-page"]:
                r = await s.client.get(path)
                if r.status_code == 404:
                    continue
                assert r.status_code == 302 and r.headers["Location"].endswith("/account#totp-h"), path
            for path in ["/account", "/privacy"]:
                r = await s.client.get(path)
                body = await r.get_data(as_text=True)
                assert r.status_code == 200 and "Set up two-factor authentication to go on" in body, path
            r = await s.client.post("/tenants", form={"name": "x", "csrf_token": s.csrf})
            assert r.status_code == 302 and r.headers["Location"].endswith("/account#totp-h")

    run(go())


def test_the_email_form_sends_a_link_and_the_link_page_changes_it(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant("acme")
            c, csrf = t.owner.client, t.owner.csrf
            r = await c.post("/account/email", form={"csrf_token": csrf, "new_email": "not an address"})
            assert r.status_code == 400 and "not an email address" in html.unescape(await r.get_data(as_text=True))
            r = await c.post("/account/email", form={"csrf_token": csrf, "new_email": "x" * 1000 + "@example.com"})
            assert r.status_code == 400
            r = await c.post("/account/email", form={"csrf_token": csrf, "new_email": "Panel.New@example.com"})
            assert r.status_code == 302
            body = await (await c.get("/account")).get_data(as_text=True)
            assert "A link to change it to panel.new@example.com was sent" in body
            mail = await OutboxMessage.get(target="panel.new@example.com")
            path = re.search(r"http://[^/]+(/account/email/\S+)", mail.body["text"]).group(1)
            r = await c.get(path)
            page = await r.get_data(as_text=True)
            assert r.status_code == 200 and "panel.new@example.com" in page
            r = await c.post(path, form={"csrf_token": _token(page)})
            assert r.status_code == 302
            body = await (await c.get("/account")).get_data(as_text=True)
            assert "Your email is panel.new@example.com now" in body
            assert (await c.get(path)).status_code == 404  # used once
            other = await h.tenant("other")
            assert (await other.owner.client.get("/account/email/" + "a" * 43)).status_code == 404

    run(go())
