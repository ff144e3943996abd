"""The billing page and banners in a real browser against a real hub process billing
through the Stripe fake: price, next invoice with its prorations, invoices, the card
through Checkout (the fake's stand-in page), then the past_due and suspended banners."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import expect

from demo.hub import sign_in as sign_in_api
from tests.hub.stripe_fake import StripeFake
from tests.panel import hubproc
from tests.panel.conftest import shoot, via_menu

EMAIL = "billing@example.com"
SECRET = "whsec_browser"


@dataclass
class BillingHub:
    url: str
    proc: hubproc.CheckoutHub
    fake: StripeFake
    tenant: str
    sub_id: str

    def deliver(self, type_: str, obj: dict) -> None:
        body, sig = self.fake.event(type_, obj, SECRET)
        r = httpx.post(f"{self.url}/billing/stripe/webhook", content=body, timeout=30,
                       headers={"Stripe-Signature": sig, "Content-Type": "application/json"})
        assert r.status_code == 200, r.text


def _enroll(url: str, client: httpx.Client, csrf: dict, tenant: str, hostname: str) -> None:
    join = client.post(f"/api/v1/tenants/{tenant}/join-tokens", headers=csrf, json={"ttl_s": 600}).json()["token"]
    r = httpx.post(f"{url}/agent/v1/enroll", timeout=30, json={"join_token": join, "inventory": {"hostname": hostname}})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("billing-panel")
    with StripeFake() as fake:
        port = hubproc.free_port()
        proc = hubproc.CheckoutHub(url=f"http://127.0.0.1:{port}", data_dir=tmp / "hub", bind=f"127.0.0.1:{port}",
                                   log=tmp / "hub.log", settings={
                                       "argon2_memory_kib": 1024, "argon2_time_cost": 1,
                                       "stripe_api_key": "sk_test_panel", "stripe_api_base": fake.url,
                                       "stripe_webhook_secret": SECRET})
        otpauth = proc.create_admin(EMAIL, hubproc.PASSWORD, totp=True)  # every account has 2FA
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30) as c:
                csrf = sign_in_api(c, EMAIL, hubproc.PASSWORD, otpauth)
                tenant = c.post("/api/v1/tenants", headers=csrf, json={"name": "Acme"}).json()["id"]
                _enroll(proc.url, c, csrf, tenant, "edge-1")
                (sub_id,) = [o["id"] for o in fake.objects.values() if o["object"] == "subscription"]
                seeded = BillingHub(proc.url, proc, fake, tenant, sub_id)
                # the trial ended ten days ago and was paid; a second server came three days ago
                now = int(time.time())
                fake.frozen = now - 10 * 86400
                seeded.deliver("invoice.paid", fake.start_period(sub_id, at=fake.frozen))
                fake.frozen = now - 3 * 86400
                _enroll(proc.url, c, csrf, tenant, "edge-2")
            yield seeded
        finally:
            proc.stop()


def sign_in(page, hub) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code").fill(hub.proc.recovery_codes[EMAIL][0])  # the fixture used this step's code
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_billing_page_card_through_checkout_and_the_dunning_banners(page, hub):
    sign_in(page, hub)
    expect(page.get_by_role("complementary", name="Billing")).to_have_count(0)  # active: nothing to say
    via_menu(page, "More in Tenant", "Billing")
    expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    expect(page.get_by_text("3.00 EUR excl. tax per agent per month")).to_be_visible()
    estimate = page.get_by_role("table", name="Next invoice (estimate)")
    expect(estimate.get_by_role("row", name=re.compile("Unused time on 1 ×"))).to_contain_text("prorated")
    expect(estimate.get_by_role("row", name=re.compile("Remaining time on 2 ×"))).to_contain_text("prorated")
    expect(estimate).to_contain_text("EUR excl. tax")
    expect(page.get_by_text(re.compile(r"One more agent added now would add \d+\.\d\d EUR"))).to_be_visible()
    expect(page.get_by_role("table", name="Invoices").get_by_role("row", name=re.compile("BW-0001"))) \
        .to_contain_text("paid")
    expect(page.get_by_text("none yet")).to_be_visible()
    shoot(page, "20-billing")

    page.get_by_role("button", name="Add a card").click()
    expect(page.get_by_role("heading", name="Checkout (test stand-in)")).to_be_visible()
    # (the conftest's CSP routing fetches the 303's target itself, so page.url keeps the hub's address)
    (session_id,) = [k for k, o in hub.fake.objects.items() if o["object"] == "checkout.session"]
    assert hub.fake.objects[session_id]["mode"] == "setup"
    hub.deliver("checkout.session.completed", hub.fake.complete_checkout(session_id))
    page.goto(hub.fake.objects[session_id]["success_url"])  # Stripe sends the person back
    expect(page.get_by_role("status").filter(has_text="Stripe is saving your card")).to_be_visible()
    expect(page.get_by_text("visa •••• 4242")).to_be_visible()
    expect(page.get_by_role("button", name="Update the card")).to_be_visible()
    shoot(page, "21-billing-card-saved")

    hub.deliver("invoice.payment_failed", hub.fake.start_period(hub.sub_id, at=int(time.time()), status="past_due"))
    page.get_by_role("link", name="Dashboard").click()
    banner = page.get_by_role("status", name="Billing")
    expect(banner).to_contain_text("The last payment failed on")
    shoot(page, "22-banner-past-due")

    as_of = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7, minutes=5)).isoformat()
    out = subprocess.run(hub.proc.command("billing", "dunning", "--as-of", as_of), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    page.get_by_role("link", name="Policies").click()
    banner = page.get_by_role("alert", name="Billing")
    expect(banner).to_contain_text("Protections suspended")
    expect(banner).to_contain_text("every agent has removed its program and table")
    shoot(page, "23-banner-suspended")
    banner.get_by_role("link", name="Billing", exact=True).click()
    expect(page.get_by_text("suspended", exact=True)).to_be_visible()
