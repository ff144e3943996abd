"""The billing page and the billing banners without a browser, against the Stripe fake:
the page's content (price, estimate with prorations, invoices), its forms (CSRF, a 303 to
Stripe's hosted pages, a CSP that lets only those through), and a banner on every tenant
page for trial end, past_due, restricted and suspended."""
from __future__ import annotations

import asyncio
import datetime as dt

from hub.models import BillingAccount
from hub.panel import summary
from hub.services import billing
from tests.hub.harness import HubHarness, enroll
from tests.hub.stripe_fake import StripeFake
from tests.panel.test_pages import InlineFinder

SECRET = "whsec_panel"
UTC = dt.timezone.utc


def harness(tmp_path, fake: StripeFake) -> HubHarness:
    return HubHarness(tmp_path, stripe_api_key="sk_test_fake", stripe_api_base=fake.url, stripe_webhook_secret=SECRET)


async def page(t, path: str = "billing") -> str:
    r = await t.owner.client.get(f"/t/{t.id}/{path}")
    assert r.status_code == 200, (path, r.status_code)
    html = await r.get_data(as_text=True)
    finder = InlineFinder()
    finder.feed(html)
    assert finder.problems == [], finder.problems
    assert all("csrf_token" in f["inputs"] for f in finder.forms if f["method"] == "post")
    return html


def test_the_billing_page_shows_price_estimate_with_prorations_and_invoices(tmp_path):
    async def go():
        with StripeFake() as fake:
            async with harness(tmp_path, fake) as h:
                t = await h.tenant()
                await enroll(t, hostname="web1")
                html = await page(t)
                assert "3.00 EUR excl. tax per agent per month" in html and "Free trial ends" in html
                assert "Your free trial ends on" in html and "Add a card" in html
                account = await BillingAccount.get(tenant_id=t.id)
                start = int(dt.datetime(2027, 3, 1, tzinfo=UTC).timestamp())
                fake.frozen = start
                fake.start_period(account.subscription_id, at=start)
                body, sig = fake.event("customer.subscription.updated", fake.objects[account.subscription_id], SECRET)
                r = await h.client().post("/billing/stripe/webhook", data=body, headers={"Stripe-Signature": sig})
                assert r.status_code == 200
                fake.frozen = start + 15 * 86400
                await enroll(t, hostname="web2")
                html = await page(t)
                assert "prorated" in html and "Unused time on 1 × Bulwark protected server" in html
                assert "Remaining time on 2 × Bulwark protected server" in html
                # 31-day March, added after 15 days: 16/31 of 3.00 EUR more for one agent
                assert "-1.55 EUR" in html and "3.10 EUR" in html and "7.55 EUR excl. tax" in html
                assert "One more agent added now would add 1.55 EUR" in html
                assert "BW-0001" in html and "Your free trial" not in html

                r = await t.owner.client.get(f"/t/{t.id}/billing")
                csp = r.headers["Content-Security-Policy"]
                assert "form-action 'self' https://checkout.stripe.com https://billing.stripe.com " + fake.url in csp
                assert "script-src 'self'" in csp
                r = await t.owner.client.post(f"/t/{t.id}/billing/card", form={"csrf_token": t.owner.csrf})
                assert r.status_code == 303 and r.headers["Location"].startswith(fake.url + "/pay/cs_test_")
                r = await t.owner.client.post(f"/t/{t.id}/billing/portal", form={"csrf_token": t.owner.csrf})
                assert r.status_code == 303 and r.headers["Location"].startswith(fake.url + "/portal/")
                for path in ("card", "portal"):
                    r = await t.owner.client.post(f"/t/{t.id}/billing/{path}", form={})
                    assert r.status_code == 403
                other = await h.tenant("other")
                r = await other.owner.client.get(f"/t/{t.id}/billing")
                assert r.status_code == 404

    asyncio.run(go())


def test_every_tenant_page_carries_the_billing_banner_of_the_state(tmp_path):
    async def go():
        with StripeFake() as fake:
            async with harness(tmp_path, fake) as h:
                t = await h.tenant()
                await enroll(t)
                account = await BillingAccount.get(tenant_id=t.id)
                since = dt.datetime.now(UTC) - dt.timedelta(days=1)
                expected = {"past_due": "The last payment failed on", "restricted": "no new agents or deployments",
                            "suspended": "every agent has removed its program and table"}
                for state, text in expected.items():
                    await BillingAccount.filter(id=account.id).update(state=state, past_due_since=since)
                    for path in ("", "policies", "deployments", "lists", "alerts", "audit", "billing"):
                        assert text in await page(t, path), (state, path)
                await BillingAccount.filter(id=account.id).update(state="active", past_due_since=None)
                assert 'aria-label="Billing"' not in await page(t, "")

    asyncio.run(go())


def test_a_hub_without_stripe_shows_no_banner_and_says_it_bills_nobody(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant()
            await enroll(t)
            assert "bills nobody" in await page(t)
            assert 'aria-label="Billing"' not in await page(t, "")

    asyncio.run(go())


def test_banner_texts_name_the_dates_that_matter():
    now = dt.datetime(2027, 1, 10, tzinfo=UTC)
    plain = {"trial_end": None, "card": None, "past_due_since": None, "restricted_at": None,
             "suspended_at": None, "cancel_at": None}
    trial = summary.billing_banner({**plain, "state": "trialing", "trial_end": now + dt.timedelta(days=2)},
                                   billing.PRICE, now)
    assert trial.level == "warn" and "12 Jan 2027" in trial.text and "Add a card" in trial.text
    early = summary.billing_banner({**plain, "state": "trialing", "trial_end": now + dt.timedelta(days=6)},
                                   billing.PRICE, now)
    assert early.level == "info"
    carded = summary.billing_banner({**plain, "state": "trialing", "trial_end": now, "card": "visa •••• 4242"},
                                    billing.PRICE, now)
    assert "3.00 EUR excl. tax per agent per month, charged to visa •••• 4242" in carded.text
    since = now - dt.timedelta(days=1)
    late = summary.billing_banner({**plain, "state": "past_due", "past_due_since": since,
                                   "restricted_at": since + dt.timedelta(days=3),
                                   "suspended_at": since + dt.timedelta(days=7)}, billing.PRICE, now)
    assert "09 Jan 2027" in late.text and "12 Jan 2027" in late.text and "16 Jan 2027" in late.text
    assert summary.billing_banner({**plain, "state": "active"}, billing.PRICE, now) is None
    ending = summary.billing_banner({**plain, "state": "active", "cancel_at": now}, billing.PRICE, now)
    assert "10 Jan 2027" in ending.text and "no refund" in ending.text
