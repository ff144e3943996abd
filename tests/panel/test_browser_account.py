"""The account and tenant pages as a person uses them, in a real browser against a real
hub (with a real SMTP server on loopback for the reset email): 2FA set-up on an invited
account from the QR code's secret, password change ending other sessions, API tokens,
join tokens and a real `bulwark agent enroll` run with the command the page shows,
invitations, the password reset by email. Every new page is screenshotted."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pyotp
import pytest
from playwright.sync_api import expect

from tests.panel import hubproc
from tests.panel.conftest import open_menu, shoot, via_menu
from tests.panel.test_browser import sign_in

RESETTER = "forgetful@example.com"
CHANGER = "changer@example.com"
INVITEE = "invitee@example.com"
NEW_PASSWORD = "an even better passphrase"


class Inbox:
    """aiosmtpd on loopback: the mail the hub's outbox sends."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message

        self.messages: list = []
        inbox = self

        class Handler(Message):
            def handle_message(self, message):
                inbox.messages.append(message)

        self.port = hubproc.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def wait_for(self, to: str, timeout_s: float = 30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.messages:
                if m["To"] == to:
                    return m
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} within {timeout_s} s")


@pytest.fixture(scope="module")
def inbox():
    box = Inbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, inbox):
    """This module's own hub: it sends mail, and has users whose passwords the tests change."""
    settings = {"smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_starttls": False,
                "mail_from": "hub@bulwark.example"}
    proc = hubproc.start_hub(tmp_path_factory.mktemp("account"), settings, users=(RESETTER,), with_2fa=(CHANGER,))
    try:
        seeded = hubproc.seed(proc.url, 10)
        seeded.changer_codes = proc.recovery_codes[CHANGER]
        yield seeded
    finally:
        proc.stop()


def _new_page(browser, hub):
    context = browser.new_context(base_url=hub.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20000)
    return context.new_page()


def _password_sign_in(page, email: str, password: str = hubproc.PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_invited_person_makes_an_account_and_sets_up_2fa_from_the_qr_secret(page, browser, hub):
    sign_in(page, hub, hub.recovery_codes[0])
    via_menu(page, "More in Tenant", "Members")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_label("Email").fill(INVITEE)
    page.get_by_label("Role", exact=True).select_option("operator")
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_label("Invitation link").input_value()
    assert link.startswith(hub.url + "/invite/")
    expect(page.get_by_role("row", name=re.compile(INVITEE))).to_contain_text("pending")
    shoot(page, "20-members-invitation")

    newcomer = _new_page(browser, hub)
    newcomer.goto(link)
    expect(newcomer.get_by_role("heading", name="Join Acme")).to_be_visible()
    expect(newcomer.get_by_label("Email")).to_have_value(INVITEE)
    shoot(newcomer, "21-invitation-sign-up")
    newcomer.get_by_label("Choose a password").fill(hubproc.PASSWORD)
    newcomer.get_by_label("Password again").fill(hubproc.PASSWORD)
    newcomer.get_by_role("button", name="Create account").click()
    expect(newcomer.get_by_role("heading", name="Your account")).to_be_visible()
    expect(newcomer.get_by_role("status")).to_contain_text("Your account is ready")
    shoot(newcomer, "22-account-new")
    newcomer.get_by_role("button", name="Set up 2FA").click()
    qr = newcomer.get_by_role("img", name="QR code of your new 2FA key")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 0  # the data: URI rendered under the CSP
    secret = newcomer.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    shoot(newcomer, "23-account-2fa-qr")
    totp = pyotp.TOTP(secret)
    newcomer.get_by_label("Code from the app").fill(totp.now())
    newcomer.get_by_role("button", name="Turn on 2FA").click()
    codes = newcomer.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    shoot(newcomer, "24-account-recovery-codes")
    newcomer.goto("/account")  # the codes were in that answer only
    expect(newcomer.get_by_role("list", name="Recovery codes")).to_have_count(0)
    open_menu(newcomer, "Account").get_by_role("button", name="Sign out").click()

    _password_sign_in(newcomer, INVITEE)  # now the second factor is asked for
    expect(newcomer.get_by_role("heading", name="Two-factor check")).to_be_visible()
    newcomer.get_by_label("Code").fill(totp.at(time.time() + 30))
    newcomer.get_by_role("button", name="Verify").click()
    expect(newcomer.get_by_role("heading", name="Dashboard")).to_be_visible()
    newcomer.context.close()

    page.reload()
    expect(page.get_by_role("row", name=re.compile(INVITEE)).first).to_contain_text("operator")


def _code_sign_in(page, email: str, code: str, password: str = hubproc.PASSWORD) -> None:
    _password_sign_in(page, email, password)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def test_change_password_ends_the_other_sessions(page, browser, hub):
    codes = hub.changer_codes  # CHANGER has 2FA (create-admin --totp): each sign-in uses a recovery code
    other = _new_page(browser, hub)
    _code_sign_in(other, CHANGER, codes[0])
    expect(other.get_by_role("heading", name="No tenant yet")).to_be_visible()
    _code_sign_in(page, CHANGER, codes[1])
    via_menu(page, "Account", "Your account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="this session")).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile("Sign out the session from"))).to_have_count(1)
    shoot(page, "25-account")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed. 1 other session(s) signed out.")
    shoot(page, "26-account-password-changed")
    other.reload()
    expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    _code_sign_in(other, CHANGER, codes[2], NEW_PASSWORD)
    expect(other.get_by_role("heading", name="No tenant yet")).to_be_visible()
    other.context.close()
    via_menu(page, "Account", "Your account")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_create_use_and_revoke_an_api_token(page, hub):
    sign_in(page, hub, hub.recovery_codes[1])
    via_menu(page, "More in Tenant", "Settings")
    page.get_by_label("Token name").fill("ci-deploy")
    page.get_by_label("write").check()
    page.get_by_role("button", name="Create token").click()
    credential = page.get_by_label("Token", exact=True).input_value()
    assert credential.startswith("bwt_")
    shoot(page, "27-settings-token-created")
    api = f"{hub.url}/api/v1/tenants/{hub.tenant}"
    assert httpx.get(api, headers={"Authorization": f"Bearer {credential}"}).status_code == 200
    page.get_by_role("button", name="Revoke the token ci-deploy").click()
    expect(page.get_by_role("status")).to_contain_text("Token ci-deploy revoked.")
    expect(page.get_by_role("row", name=re.compile("ci-deploy"))).to_contain_text("revoked")
    assert httpx.get(api, headers={"Authorization": f"Bearer {credential}"}).status_code == 401
    shoot(page, "28-settings")


def test_a_join_token_enrols_a_real_agent_with_the_command_shown(page, hub, tmp_path):
    sign_in(page, hub, hub.recovery_codes[2])
    page.get_by_role("link", name="Enrol a server").click()
    expect(page.get_by_role("heading", name="Enrol a server")).to_be_visible()
    page.get_by_label("Servers").fill("2")
    page.get_by_label("Labels").fill("db eu-west")
    page.get_by_role("button", name="Create join token").click()
    command = page.get_by_label("Enrolment command").input_value()
    shoot(page, "29-enrol-command")
    first = command.splitlines()[0]
    assert "--token-stdin" in first and "bwj_" not in first.split("|", 1)[1]  # not in the agent's argv
    # As the page says, minus sudo (the test is root) and with this test's own state directory.
    agent = f"{sys.executable} -m bulwark.cli agent enroll --state-root {tmp_path} --name enrolled"
    run = first.replace("sudo bulwark agent enroll", agent)
    out = subprocess.run(["sh", "-c", run], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "enrolled as agent" in out.stdout
    page.goto(page.url)  # (a reload would post the form again: a new token)
    expect(page.get_by_role("row").filter(has_text="1 / 2")).to_contain_text("usable")
    page.get_by_role("button", name=re.compile("Revoke the join token")).first.click()
    expect(page.get_by_role("status")).to_contain_text("Join token revoked")
    out = subprocess.run(["sh", "-c", run.replace("--name enrolled", "--name second")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "401" in out.stderr
    shoot(page, "30-enrol")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("row").filter(has_text="db")).to_have_count(1)


def test_reset_a_forgotten_password_through_the_emailed_link(page, hub, inbox):
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    shoot(page, "31-reset-request")
    page.get_by_label("Email").fill(RESETTER)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text("If that address has an account")
    mail = inbox.wait_for(RESETTER)
    link = re.search(r"http://\S+/reset/\S+", mail.get_payload()).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    shoot(page, "32-reset-choose")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed")
    _password_sign_in(page, RESETTER, NEW_PASSWORD)  # no 2FA yet: the sign-in leads to its set-up
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_role("alert", name="Two-factor authentication required")).to_be_visible()
    page.console.expect_status(404)
    page.goto(link)  # single use
    expect(page.get_by_role("heading", name=re.compile("not found|Not found|404"))).to_be_visible()


