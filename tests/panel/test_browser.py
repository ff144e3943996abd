"""The panel as a person uses it, in a real browser against a real hub."""
from __future__ import annotations

import re

import pyotp

from playwright.sync_api import expect

from tests.panel import hubproc
from tests.panel.conftest import LIST_SIZE, open_menu, shoot, via_menu

BROKEN = 'policy "web"\ndefault pass\n\ndrop tcp dport 99999\n'
FIXED = 'policy "web"\ndefault pass\n\ndrop tcp dport 9999\n'


def set_source(page, text: str) -> None:
    """Replace the editor's text as a person would (select all, then type): Playwright's
    fill() on a contenteditable runs Chromium's own editing, which styles inline."""
    expect(page.locator(".cm-editor")).to_be_visible()  # typed before it mounts, the text would be lost
    editor = page.get_by_label("Policy source")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def sign_in(page, hub, code: str | None = None, *, shot: bool = False) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(hubproc.ADMIN)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    if shot:
        shoot(page, "01-sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-factor check")).to_be_visible()
    page.get_by_label("Code").fill(code or hub.next_code())
    if shot:
        shoot(page, "02-second-factor")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_sign_in_with_totp_and_see_the_dashboard_live(page, hub):
    sign_in(page, hub, shot=True)
    row = page.get_by_role("row", name=re.compile("edge-1"))
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("native")
    expect(row).to_contain_text("enabled")
    badge = page.get_by_role("status").filter(has_text=re.compile("connect|live|stale|no live data"))
    expect(badge).to_have_text("connected")  # the stream is open: what comes now is pushed
    hubproc.send_metrics(hub, packets=5000)  # rates arrive over the page's SSE stream
    expect(badge).to_have_text("live")
    expect(row.locator("[data-live=pass]")).not_to_have_text("–")
    shoot(page, "03-dashboard")
    expect(badge).to_have_text("stale", timeout=30000)  # no more rates: the data went stale
    shoot(page, "04-dashboard-stale")


def test_wrong_code_is_refused_and_a_recovery_code_works(page, hub):
    page.goto("/login")
    page.get_by_label("Email").fill(hubproc.ADMIN)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.console.expect_status(401)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong code")
    page.get_by_label("Code").fill(hub.recovery_codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    open_menu(page, "Account").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/")  # signed out for real: back to the sign-in page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_policy_error_at_its_line_then_fix_deploy_and_roll_back(page, hub):
    sign_in(page, hub, hub.recovery_codes[1])
    page.get_by_role("link", name="Policies").click()
    expect(page.get_by_text("No policy yet.")).to_be_visible()
    shoot(page, "05a-policies-empty")
    page.get_by_label("Name").fill("web")
    page.get_by_label("Source").fill(BROKEN)
    page.get_by_role("button", name="Create policy").click()
    diagnostic = page.get_by_role("link", name=re.compile(r"error at line 4:\d+"))
    expect(diagnostic).to_be_visible()
    expect(page.get_by_text("Fix the errors above to deploy.")).to_be_visible()
    diagnostic.click()  # the caret moves to the error
    expect(page.get_by_text(re.compile(r"Line 4, column \d+"))).to_be_visible()
    shoot(page, "05-policy-error")
    set_source(page, FIXED)
    live = page.get_by_role("status", name="Live check")
    expect(live).to_contain_text("Live check: no problems in the unsaved source")  # checked as typed
    set_source(page, FIXED + "pass udp dport 70000\n")
    expect(live.get_by_role("link", name=re.compile(r"error at line 5:\d+"))).to_be_visible()
    shoot(page, "05b-policy-live-check")
    set_source(page, FIXED)
    page.get_by_role("button", name="Save and check").click()
    expect(page.get_by_role("status").filter(has_text="Saved version 2: no errors.")).to_be_visible()
    expect(page.get_by_text("no problems")).to_be_visible()
    expect(page.get_by_role("checkbox", name="Deploy to edge-1")).to_be_checked()
    shoot(page, "06-policy-ok")
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("heading", name="Policy web")).to_be_visible()  # back on the policy, with its rollout
    expect(page.get_by_role("status").filter(has_text="Deployed web version 2")).to_be_visible()

    page.get_by_role("link", name="Policies").click()
    page.get_by_role("link", name="web").click()
    set_source(page, FIXED + "drop udp dport 9999\n")
    page.get_by_role("button", name="Save and check").click()
    page.get_by_role("button", name="Deploy").click()
    page.get_by_role("link", name="Policies").click()
    expect(page.get_by_role("row", name=re.compile("web"))).to_contain_text("ok")
    shoot(page, "07a-policies")
    via_menu(page, "More in Policies", "Deployments")
    rows = page.get_by_role("row").filter(has=page.get_by_role("link", name="web"))
    expect(rows).to_have_count(2)
    shoot(page, "07-deployments")
    page.get_by_role("button", name=re.compile("Roll back to")).click()
    expect(page.get_by_role("status").filter(has_text="Rolled back to")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="rollback")).to_have_count(1)


def test_agent_page_counters_and_protection(page, hub):
    sign_in(page, hub, hub.recovery_codes[2])
    page.get_by_role("link", name="edge-1").click()
    expect(page.get_by_role("heading", name="edge-1")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("default"))).to_be_visible()
    shoot(page, "08-agent")
    page.get_by_role("button", name="Disable protection").click()
    expect(page.get_by_role("status").filter(has_text="Protection disabled on edge-1.")).to_be_visible()
    page.get_by_role("button", name="Enable protection").click()
    expect(page.get_by_role("status").filter(has_text="Protection enabled on edge-1.")).to_be_visible()


def test_list_paging_search_add_remove(page, hub):
    sign_in(page, hub, hub.recovery_codes[3])
    page.get_by_role("link", name="Lists").click()
    shoot(page, "09-lists")
    page.get_by_role("link", name="crowdsec-ban").click()
    expect(page.get_by_text(f"{LIST_SIZE:,} entries")).to_be_visible()
    first = page.get_by_role("cell").first.inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_role("link", name="Previous page")).to_be_visible()
    assert page.get_by_role("cell").first.inner_text() != first
    page.get_by_role("link", name="Last page").click()
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous page").click()
    expect(page.get_by_role("link", name="Next page")).to_be_visible()
    page.get_by_label("Search entries").fill("10.0.4.")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("210 entries matching “10.0.4.”")).to_be_visible()
    shoot(page, "10-list-search")
    page.get_by_label("Address or network").fill("203.0.113.7")
    page.get_by_label("Comment").fill("scanner")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Added 203.0.113.7.")).to_be_visible()
    page.get_by_label("Search entries").fill("203.")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name="Remove 203.0.113.7").click()
    expect(page.get_by_role("status").filter(has_text="Removed 203.0.113.7.")).to_be_visible()
    page.get_by_label("Address or network").fill("not-an-address")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("'not-an-address' is not an IPv4/IPv6 address")
    expect(page.get_by_role("heading", name="List crowdsec-ban")).to_be_visible()  # back on the list
    shoot(page, "11-list-bad-input")


def test_audit_log_and_tenant_switcher(page, hub):
    sign_in(page, hub, hub.recovery_codes[4])
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="list.create").first).to_be_visible()
    shoot(page, "12-audit")
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    shoot(page, "12-alerts")
    page.get_by_text("Tenant: Acme").click()
    page.get_by_role("link", name=re.compile("Globex")).click()
    expect(page.get_by_text("Tenant: Globex")).to_be_visible()
    expect(page.get_by_text("No agent has enrolled yet.")).to_be_visible()
    shoot(page, "13-other-tenant")


def test_csrf_refused_and_cookie_flags(page, hub):
    sign_in(page, hub, hub.recovery_codes[5])
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["bulwark_session"]
    assert session["httpOnly"] and session["sameSite"] in ("Lax", "Strict")
    assert not session["secure"]  # plain http on loopback is the one place it may be
    panel = cookies["bulwark_panel"]
    assert panel["httpOnly"] and panel["sameSite"] in ("Lax", "Strict")
    url = f"/t/{hub.tenant}/agents/{hub.agent_id}/protection"
    refused = page.request.post(url, form={"enabled": "0"}, max_redirects=0)
    assert refused.status == 403
    wrong = page.request.post(url, form={"enabled": "0", "csrf_token": "x" * 43}, max_redirects=0)
    assert wrong.status == 403
    page.goto(url.rsplit("/", 1)[0])
    expect(page.get_by_role("button", name="Disable protection")).to_be_visible()  # still enabled
    page.goto("/login")
    shoot(page, "14-signed-in-login-page")


def test_a_user_without_2fa_or_tenant_creates_one(page, hub):
    page.goto("/")
    page.get_by_label("Email").fill(hubproc.NEWCOMER)
    page.get_by_label("Password").fill("wrong password!")
    page.console.expect_status(401)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Every account needs 2FA: the first sign-in leads to its set-up, and nothing else opens.
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_role("alert", name="Two-factor authentication required")).to_be_visible()
    shoot(page, "15-2fa-required")
    page.goto("/")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()  # sent back to the set-up
    page.get_by_role("button", name="Set up 2FA").click()
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on 2FA").click()
    expect(page.get_by_role("list", name="Recovery codes").get_by_role("listitem")).to_have_count(10)
    expect(page.get_by_role("alert", name="Two-factor authentication required")).to_have_count(0)
    page.goto("/")
    expect(page.get_by_role("heading", name="No tenant yet")).to_be_visible()
    shoot(page, "15-no-tenant")
    page.get_by_label("Tenant name").fill("Initech")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("Initech")).to_be_visible()


def test_privacy_page_export_and_closing_an_account(page, hub):
    sign_in(page, hub, hub.recovery_codes[6])
    via_menu(page, "Account", "Privacy")
    expect(page.get_by_role("heading", name="Privacy", exact=True)).to_be_visible()
    for name in ("What we keep about you, and why", "A copy of your data", "Where you are signed in",
                 "Two-factor authentication", "Close your account"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("dropped-packet samples"))).to_be_visible()
    expect(page.get_by_text("this browser")).to_be_visible()
    expect(page.get_by_label("Code")).to_be_visible()  # 2FA on: closing asks for the code too
    with page.expect_download() as download:
        page.get_by_role("link", name="Download my data").click()
    assert download.value.suggested_filename.startswith("bulwark-account-")
    shoot(page, "16-privacy")
    open_menu(page, "Account").get_by_role("button", name="Sign out").click()

    # Someone who never set up 2FA may still close their account (the limited session reaches /privacy).
    page.get_by_label("Email").fill(hubproc.CLOSER)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.goto("/privacy")
    expect(page.get_by_role("alert", name="Two-factor authentication required")).to_be_visible()
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Close my account").click()  # the box is required: nothing sent
    expect(page.get_by_role("heading", name="Close your account")).to_be_visible()
    page.get_by_label("I want my account closed and erased").check()
    page.get_by_role("button", name="Close my account").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("erased within 30 days")
    shoot(page, "17-account-closed")
    page.get_by_label("Email").fill(hubproc.CLOSER)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.console.expect_status(401)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
