"""Billing per protected server against a stateful fake of Stripe's endpoints on loopback
(tests/hub/stripe_fake.py) that the real `stripe` library talks to: the trial, the
quantity following the agents, signed webhooks handled once whatever their order, the
D+0/D+3/D+7 path on a moved clock, and suspension reaching the agents' desired state."""
from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from hub.models import AuditEntry, BillingAccount, Incident, StripeEvent
from hub.services import billing, billing_customer, dunning
from tests.hub.harness import HubHarness, enroll
from tests.hub.stripe_fake import FIXTURES, StripeFake

SECRET = "whsec_test"


@pytest.fixture
def stripe_fake():
    with StripeFake() as fake:
        yield fake


def harness(tmp_path, fake: StripeFake) -> HubHarness:
    return HubHarness(tmp_path, stripe_api_key="sk_test_fake", stripe_api_base=fake.url,
                      stripe_webhook_secret=SECRET)


async def post_event(hub, fake, type_: str, obj: dict, **kw):
    body, sig = fake.event(type_, obj, SECRET, **kw)
    return await hub.client().post("/billing/stripe/webhook", data=body,
                                   headers={"Stripe-Signature": sig, "Content-Type": "application/json"})


# ---- the table ----------------------------------------------------------------------

def test_the_dunning_table_never_moves_a_state_backwards():
    assert dunning.step("active", "payment_failed") == "past_due"
    assert dunning.step("past_due", "day3") == "restricted"
    assert dunning.step("restricted", "day7") == "suspended"
    assert dunning.step("suspended", "paid") == "active"
    assert dunning.step("suspended", "payment_failed") == "suspended"  # no row: unchanged
    assert dunning.step("restricted", "payment_failed") == "restricted"
    assert dunning.step("active", "day7") == "active"
    with pytest.raises(ValueError):
        dunning.step("active", "teleport")
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    assert dunning.clock_events(t0, t0 + dt.timedelta(days=2, hours=23)) == []
    assert dunning.clock_events(t0, t0 + dt.timedelta(days=3)) == ["day3"]
    assert dunning.clock_events(t0, t0 + dt.timedelta(days=7)) == ["day3", "day7"]
    for state in dunning.STATES:
        assert set(dunning.ALLOWS[state]) == {"new_agents", "deploy", "protect"}


# ---- the subscription follows the agents ---------------------------------------------

async def test_first_agent_starts_one_trial_and_quantity_follows_agents(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        a1 = await enroll(t, hostname="web1")
        account = await BillingAccount.get(tenant_id=t.id)
        sub = stripe_fake.objects[account.subscription_id]
        assert account.state == "trialing" and account.trial_used and account.quantity == 1
        assert sub["status"] == "trialing" and sub["trial_end"] - sub["trial_start"] == 7 * 86400
        price = sub["items"]["data"][0]["price"]
        assert (price["unit_amount"], price["currency"], price["tax_behavior"]) == (300, "eur", "exclusive")
        await enroll(t, hostname="web2")
        assert stripe_fake.objects[account.item_id]["quantity"] == 2
        r = await t.owner.post(t.base + f"/agents/{a1.id}/revoke")
        assert r.status_code in (200, 204), await r.get_data(as_text=True)
        assert stripe_fake.objects[account.item_id]["quantity"] == 1
        updates = [c for c in stripe_fake.calls if c[1].startswith("/v1/subscription_items/")]
        assert [u[2]["proration_behavior"] for u in updates] == ["create_prorations"] * 2
        keys = [u[3] for u in updates]
        assert len(set(keys)) == 2 and all(k.startswith(f"bulwark:{t.id}:") for k in keys)
        r = await t.token.get(t.base + "/billing")
        body = await r.get_json()
        assert body["price"] == "3.00 EUR excl. tax per agent per month" and body["quantity"] == 1
        # one trial per tenant ever: a second subscription (after cancelling) gets none
        await BillingAccount.filter(id=account.id).update(subscription_id=None, item_id=None, quantity=0,
                                                          state="canceled")
        await enroll(t, hostname="web3")
        again = await BillingAccount.get(id=account.id)
        assert stripe_fake.objects[again.subscription_id]["status"] == "active"
        creates = [c for c in stripe_fake.calls if c[1] == "/v1/subscriptions"]
        assert "trial_period_days" in creates[0][2] and "trial_period_days" not in creates[1][2]


# ---- webhooks -----------------------------------------------------------------------

async def test_webhooks_are_verified_and_handled_once_whatever_their_order(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        await enroll(t)
        account = await BillingAccount.get(tenant_id=t.id)
        sub = stripe_fake.set_status(account.subscription_id, "past_due")

        r = await hub.client().post("/billing/stripe/webhook", data=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        assert r.status_code == 400
        stale = await post_event(hub, stripe_fake, "customer.subscription.updated", sub,
                                 at=int(dt.datetime.now().timestamp()) - 301)
        assert stale.status_code == 400 and "signature" in (await stale.get_json())["message"]

        same = [post_event(hub, stripe_fake, "customer.subscription.updated", sub, event_id="evt_twice")
                for _ in range(2)]
        answers = await asyncio.gather(*same)
        assert [r.status_code for r in answers] == [200, 200]
        assert sorted([bool((await r.get_json()).get("duplicate")) for r in answers]) == [False, True]
        assert await StripeEvent.filter(id="evt_twice").count() == 1
        assert (await BillingAccount.get(id=account.id)).state == "past_due"

        # a late "trialing" event cannot move it back: the re-fetched subscription decides
        old = dict(sub, status="trialing")
        await post_event(hub, stripe_fake, "customer.subscription.updated", old)
        assert (await BillingAccount.get(id=account.id)).state == "past_due"


# ---- dunning ------------------------------------------------------------------------

async def test_unpaid_d0_d3_d7_then_payment_restores_everything(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        agent = await enroll(t)
        r = await t.token.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\n'})
        policy = await r.get_json()
        r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
        assert r.status_code == 201
        r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600})
        early_join = (await r.get_json())["token"]  # made while billing was fine
        spare = await enroll(t, hostname="spare")
        r = await t.token.post(t.base + f"/agents/{spare.id}/disable")
        assert r.status_code == 200
        account = await BillingAccount.get(tenant_id=t.id)
        # the trial ends without a card: the invoice it makes fails
        invoice = stripe_fake.start_period(account.subscription_id, status="past_due")
        await post_event(hub, stripe_fake, "invoice.payment_failed", invoice)
        account = await BillingAccount.get(id=account.id)
        d0 = account.past_due_since
        assert account.state == "past_due" and d0 is not None
        summary = await (await t.token.get(t.base + "/billing")).get_json()
        assert summary["restricted_at"].startswith(str((d0 + dt.timedelta(days=3)).date()))

        await billing.dunning_job(hub.rt, now=d0 + dt.timedelta(days=2, hours=23))
        assert (await BillingAccount.get(id=account.id)).state == "past_due"
        await billing.dunning_job(hub.rt, now=d0 + dt.timedelta(days=3))
        assert (await BillingAccount.get(id=account.id)).state == "restricted"
        r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
        body = await r.get_json()
        assert r.status_code == 402 and body["error"] == "payment_required"
        assert "restricted" in body["message"] and "no new deployments" in body["message"]
        r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600})
        assert r.status_code == 402 and "no new agents" in (await r.get_json())["message"]
        r = await hub.client().post("/agent/v1/enroll", json={"join_token": early_join, "inventory": {"hostname": "x"}})
        assert r.status_code == 402
        r = await t.token.post(t.base + f"/agents/{spare.id}/enable")  # one more billed agent: a new one
        assert r.status_code == 402
        # reads and the protections in place stay
        assert (await t.token.get(t.base + "/agents")).status_code == 200
        assert (await t.token.get(t.base + "/deployments")).status_code == 200
        doc = await agent.desired()
        assert doc["mode"] == "enforce"

        await billing.dunning_job(hub.rt, now=d0 + dt.timedelta(days=7))
        assert (await BillingAccount.get(id=account.id)).state == "suspended"
        doc = await agent.desired()
        assert doc["mode"] == "deactivate" and "plan" not in doc

        paid = stripe_fake.start_period(account.subscription_id, at=stripe_fake.now, status="active")
        await post_event(hub, stripe_fake, "invoice.paid", paid)
        account = await BillingAccount.get(id=account.id)
        assert account.state == "active" and account.past_due_since is None
        assert (await agent.desired())["mode"] == "enforce"
        r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
        assert r.status_code == 201
        actions = await AuditEntry.filter(tenant_id=t.id, action__startswith="billing.").order_by("seq").values_list(
            "action", flat=True)  # in the order written: PostgreSQL gives no order without one
        assert [a for a in actions if a != "billing.quantity"] == [
            "billing.trialing", "billing.past_due", "billing.restricted", "billing.suspended", "billing.active"]
        told = await Incident.filter(tenant_id=t.id, kind="billing").order_by("opened_at")
        assert [(i.subject, i.state) for i in told] == [  # a message for each step, each resolved by the next
            ("past_due", "resolved"), ("restricted", "resolved"), ("suspended", "resolved")]


# ---- prorations, to the cent ------------------------------------------------------------

def stripe_proration(unit: int, quantity: int, start: int, end: int, at: int) -> int:
    """Stripe's rule, written here apart from the fake: the price of `quantity` for the
    part of the period left at `at`, counted in seconds, rounded half up to the cent."""
    exact = Fraction(unit * quantity * (end - at), end - start)
    return int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0)


async def test_adding_and_removing_agents_mid_period_is_prorated_to_the_cent(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        await enroll(t, hostname="web1")
        account = await BillingAccount.get(tenant_id=t.id)
        start = int(dt.datetime(2027, 1, 14, 9, 30, tzinfo=dt.timezone.utc).timestamp())
        stripe_fake.frozen = start
        stripe_fake.start_period(account.subscription_id, at=start)  # the trial ended, paid
        item = stripe_fake.objects[account.item_id]
        end = item["current_period_end"]
        assert end - start == 31 * 86400  # 14 Jan → 14 Feb

        added_at = start + 9 * 86400 + 3 * 3600 + 17  # day 9, 03:00:17
        stripe_fake.frozen = added_at
        web2 = await enroll(t, hostname="web2")
        removed_at = added_at + 11 * 86400 + 7 * 3600 + 5 * 60 + 41
        stripe_fake.frozen = removed_at
        r = await t.owner.post(t.base + f"/agents/{web2.id}/revoke")
        assert r.status_code in (200, 204)

        r = await t.token.get(t.base + "/billing/estimate")
        assert r.status_code == 200, await r.get_data(as_text=True)
        est = await r.get_json()
        prorations = [line["amount"] for line in est["lines"] if line["proration"]]
        assert prorations == [
            -stripe_proration(300, 1, start, end, added_at), stripe_proration(300, 2, start, end, added_at),
            -stripe_proration(300, 2, start, end, removed_at), stripe_proration(300, 1, start, end, removed_at)]
        assert prorations == [-212, 423, -205, 102]  # the same rule, worked out once by hand
        period = [line for line in est["lines"] if not line["proration"]]
        assert [(line["quantity"], line["amount"]) for line in period] == [(1, 300)]
        assert est["proration"] == sum(prorations) and est["total_excluding_tax"] == 300 + sum(prorations)
        assert est["total_excluding_tax_text"] == "4.08 EUR excl. tax"
        assert dt.datetime.fromisoformat(est["billed_at"]).timestamp() == end

        # a preview of one more agent now (Stripe's clock), without changing anything
        r = await t.token.get(t.base + "/billing/estimate?agents=2")
        preview = await r.get_json()
        added = [line["amount"] for line in preview["lines"] if line["proration"]][4:]
        assert added == [-stripe_proration(300, 1, start, end, removed_at), stripe_proration(300, 2, start, end, removed_at)]
        assert [line["amount"] for line in preview["lines"] if not line["proration"]] == [600]
        assert stripe_fake.objects[account.item_id]["quantity"] == 1
        # at a time the caller names (the service's `at`): the proration of that moment
        later = dt.datetime.fromtimestamp(end - 86400, dt.timezone.utc)
        preview = await billing_customer.estimate(hub.rt, t.id, 3, at=later)
        assert [line["amount"] for line in preview["lines"] if line["proration"]][4:] == [
            -stripe_proration(300, 1, start, end, end - 86400), stripe_proration(300, 3, start, end, end - 86400)]

        # the next month's invoice carries them, and the panel's list shows it
        invoice = stripe_fake.start_period(account.subscription_id)
        assert invoice["total"] == 300 + sum(prorations)
        listed = (await (await t.token.get(t.base + "/billing/invoices")).get_json())["invoices"]
        assert [i["total_text"] for i in listed][:1] == ["4.08 EUR"]


# ---- idempotent and ordered ---------------------------------------------------------------

async def test_a_lost_answer_is_retried_as_the_same_change_and_changes_stay_ordered(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        await enroll(t, hostname="web1")
        account = await BillingAccount.get(tenant_id=t.id)
        stripe_fake.start_period(account.subscription_id, at=stripe_fake.now)
        path = f"/v1/subscription_items/{account.item_id}"
        stripe_fake.fail_once(path)  # Stripe made the change; its answer is lost; the library retries
        await enroll(t, hostname="web2")
        tries = [c for c in stripe_fake.calls if c[1] == path]
        assert len(tries) == 2 and tries[0][3] == tries[1][3] == f"bulwark:{t.id}:2:2"
        assert len(stripe_fake.pending[account.customer_id]) == 2  # one change: one credit, one charge
        assert stripe_fake.objects[account.item_id]["quantity"] == 2

        await asyncio.gather(*(enroll(t, hostname=f"burst{i}") for i in range(4)))
        sets = [(c[3], int(c[2]["quantity"])) for c in stripe_fake.calls if c[1] == path][2:]
        assert [q for _, q in sets] == sorted(q for _, q in sets) and sets[-1][1] == 6  # in order, ending right
        assert len({k for k, _ in sets}) == len(sets)
        account = await BillingAccount.get(id=account.id)
        assert account.quantity == 6 and account.quantity_seq == 2 + len(sets)  # a burst may be one change
        assert stripe_fake.objects[account.item_id]["quantity"] == 6
        # the same key with other parameters is refused by Stripe: a key is never reused
        keys = [c[3] for c in stripe_fake.calls if c[1] == path]
        assert len(set(keys)) == len(keys) - 1


async def test_one_trial_per_tenant_ever_even_after_every_agent_is_gone(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        first = await enroll(t, hostname="web1")
        account = await BillingAccount.get(tenant_id=t.id)
        assert account.state == "trialing" and account.trial_end is not None
        await t.owner.post(t.base + f"/agents/{first.id}/revoke")
        stripe_fake.set_status(account.subscription_id, "canceled")
        await post_event(hub, stripe_fake, "customer.subscription.deleted",
                         stripe_fake.objects[account.subscription_id])
        assert (await BillingAccount.get(id=account.id)).state == "canceled"
        await BillingAccount.filter(id=account.id).update(subscription_id=None, item_id=None)
        await enroll(t, hostname="web2")
        again = await BillingAccount.get(id=account.id)
        assert stripe_fake.objects[again.subscription_id]["status"] == "active" and again.state == "active"
        creates = [c[2] for c in stripe_fake.calls if c[1] == "/v1/subscriptions"]
        assert ["trial_period_days" in c for c in creates] == [True, False]
        assert again.customer_id == account.customer_id  # one customer per tenant


# ---- Checkout, the portal, invoices ------------------------------------------------------

async def test_card_through_checkout_and_cancel_at_period_end_in_the_portal(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        await enroll(t)
        account = await BillingAccount.get(tenant_id=t.id)
        assert account.card is None and stripe_fake.objects[account.subscription_id]["status"] == "trialing"
        r = await t.token.post(t.base + "/billing/checkout")
        assert r.status_code == 200, await r.get_data(as_text=True)
        url = (await r.get_json())["url"]
        session_id = url.rsplit("/", 1)[1]
        session = stripe_fake.objects[session_id]
        assert url.startswith(stripe_fake.url) and session["mode"] == "setup"
        assert session["customer"] == account.customer_id and session["currency"] == "eur"
        assert session["success_url"].endswith(f"/t/{t.id}/billing?card=saved")

        completed = stripe_fake.complete_checkout(session_id, last4="4444")
        r = await post_event(hub, stripe_fake, "checkout.session.completed", completed)
        assert r.status_code == 200
        account = await BillingAccount.get(id=account.id)
        pm = stripe_fake.objects[completed["setup_intent"]]["payment_method"]
        assert account.card == "visa •••• 4444"
        assert stripe_fake.objects[account.customer_id]["invoice_settings"]["default_payment_method"] == pm
        assert stripe_fake.objects[account.subscription_id]["default_payment_method"] == pm
        forged = dict(completed, id=session_id, status="open")  # the body is not trusted: Stripe is asked
        await post_event(hub, stripe_fake, "checkout.session.completed", forged)
        assert (await BillingAccount.get(id=account.id)).card == "visa •••• 4444"

        r = await t.token.post(t.base + "/billing/portal")
        assert r.status_code == 200 and (await r.get_json())["url"].startswith(stripe_fake.url + "/portal/")
        portal = [c[2] for c in stripe_fake.calls if c[1] == "/v1/billing_portal/sessions"][0]
        assert portal["return_url"].endswith(f"/t/{t.id}/billing")
        sub = stripe_fake.portal_cancel(account.subscription_id)
        await post_event(hub, stripe_fake, "customer.subscription.updated", sub)
        body = await (await t.token.get(t.base + "/billing")).get_json()
        end = sub["items"]["data"][0]["current_period_end"]
        assert body["cancel_at"] is not None and body["card"] == "visa •••• 4444"
        assert dt.datetime.fromisoformat(body["cancel_at"]).timestamp() == end
        assert body["state"] == "trialing"  # still served until then: no refund, no cut


async def test_billing_endpoints_refuse_bad_input_and_missing_scope(tmp_path, stripe_fake):
    async with harness(tmp_path, stripe_fake) as hub:
        t = await hub.tenant()
        r = await t.token.get(t.base + "/billing/estimate")
        assert r.status_code == 404  # no agent billed yet: no subscription to preview
        assert (await (await t.token.get(t.base + "/billing/invoices")).get_json()) == {"invoices": []}
        await enroll(t)
        for bad in ("-1", "abc", "100001", "1e3", "1" * 400, ""):
            r = await t.token.get(t.base + "/billing/estimate", query_string={"agents": bad})
            assert r.status_code == 400, (bad, r.status_code)
        r = await t.token.get(t.base + "/billing/estimate", query_string={"agents": "2", "x": "1"})
        assert r.status_code == 400
        reader = await t.make_token(["read", "write", "deploy"])
        for method, path in (("GET", ""), ("GET", "/invoices"), ("GET", "/estimate"), ("POST", "/checkout"),
                             ("POST", "/portal")):
            r = await reader.request(method, t.base + "/billing" + path)
            assert r.status_code == 403, (method, path)
        other = await hub.tenant("other")
        r = await other.token.get(t.base + "/billing/invoices")
        assert r.status_code == 404
        r = await hub.client().post("/billing/stripe/webhook", data=b"x" * (2 * 1024 * 1024),
                                    headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json",
                                             "Content-Length": str(2 * 1024 * 1024)})
        assert r.status_code == 413
        body = b"{not json"
        sig = __import__("stripe").WebhookSignature.generate_signature_header(body.decode(), SECRET,
                                                                              int(dt.datetime.now().timestamp()))
        r = await hub.client().post("/billing/stripe/webhook", data=body, headers={"Stripe-Signature": sig})
        assert r.status_code == 400
        r = await hub.client().post("/billing/stripe/webhook", data=b"{}")
        assert r.status_code == 400
        # Stripe away: a clear 503, and the agent change itself still goes through
        stripe_fake.server.shutdown()
        stripe_fake.server.server_close()
        r = await t.token.get(t.base + "/billing/invoices")
        assert r.status_code == 503 and "Stripe" in (await r.get_json())["message"]
        await enroll(t, hostname="web2")


async def test_a_hub_without_stripe_bills_nobody(tmp_path):
    async with HubHarness(tmp_path) as hub:
        t = await hub.tenant()
        await enroll(t)
        assert (await (await t.token.get(t.base + "/billing")).get_json())["state"] == "none"
        assert (await t.token.get(t.base + "/billing/invoices")).status_code == 404
        assert (await t.token.post(t.base + "/billing/checkout")).status_code == 404


# ---- the fake's contract ------------------------------------------------------------

def test_the_fake_answers_with_stripes_own_keys(stripe_fake):
    """Every endpoint the hub uses, through the real library, against Stripe's fixtures:
    the same keys as the library reads them, and the same types as sent."""
    import stripe

    sc = stripe.StripeClient("sk_test_fake", base_addresses={"api": stripe_fake.url})
    customer = sc.v1.customers.create({"name": "t"})
    product = sc.v1.products.create({"name": "p"})
    price = sc.v1.prices.create({"product": product.id, "unit_amount": 300, "currency": "eur",
                                 "tax_behavior": "exclusive", "recurring": {"interval": "month"}, "lookup_key": "k"})
    found = sc.v1.prices.list({"lookup_keys": ["k"], "active": True, "limit": 1}).data[0]
    sub = sc.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id, "quantity": 2}],
                                      "trial_period_days": 7})
    invoice = stripe_fake.start_period(sub.id, at=stripe_fake.now)
    item = sc.v1.subscription_items.update(sub["items"].data[0].id, {"quantity": 3})
    preview = sc.v1.invoices.create_preview({"customer": customer.id, "subscription": sub.id, "subscription_details": {
        "items": [{"id": item.id, "quantity": 4}], "proration_behavior": "create_prorations"}})
    listed = sc.v1.invoices.list({"customer": customer.id, "limit": 5}).data[0]
    session = sc.v1.checkout.sessions.create({"mode": "setup", "customer": customer.id, "currency": "eur",
                                              "success_url": "https://x/ok", "cancel_url": "https://x/no"})
    stripe_fake.complete_checkout(session.id)
    session = sc.v1.checkout.sessions.retrieve(session.id)
    intent = sc.v1.setup_intents.retrieve(session.setup_intent)
    pm = sc.v1.payment_methods.retrieve(intent.payment_method)
    customer = sc.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    sub = sc.v1.subscriptions.update(sub.id, {"default_payment_method": pm.id})
    sub = sc.v1.subscriptions.retrieve(sub.id)
    portal = sc.v1.billing_portal.sessions.create({"customer": customer.id, "return_url": "https://x/back"})
    assert customer.invoice_settings.default_payment_method == pm.id == sub.default_payment_method
    assert len([line for line in preview.lines.data if line.parent.subscription_item_details.proration]) == 4
    walked = [("customer", customer), ("product", product), ("price", price), ("price", found),
              ("subscription", sub), ("subscription_item", item), ("invoice", preview), ("invoice", listed),
              ("checkout.session", session), ("setup_intent", intent), ("payment_method", pm),
              ("billing_portal.session", portal), *(("line_item", line) for line in preview.lines.data),
              ("invoice", stripe.Invoice.construct_from(invoice, "k"))]
    for resource, obj in walked:
        as_read = obj.to_dict()
        assert set(as_read) == set(FIXTURES[resource]), (resource, set(as_read) ^ set(FIXTURES[resource]))
        for key, value in FIXTURES[resource].items():
            got = as_read[key]
            if value is not None and got is not None:
                # the library reads Stripe's decimal strings as Decimal
                same = type(got) is type(value) or {type(got), type(value)} in ({int, float}, {Decimal, str})
                assert same, (resource, key, type(got), type(value))
    body, sig = stripe_fake.event("invoice.paid", invoice, SECRET)
    event = stripe.Webhook.construct_event(body, sig, SECRET, tolerance=300)
    assert set(event.to_dict()) == set(FIXTURES["event"])
