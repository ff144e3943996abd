"""Billing per protected server against a stateful fake of Stripe's endpoints on loopback
(tests/hub/stripe_fake.py) that the real `stripe` library talks to: the trial, the
quantity following the agents, signed webhooks handled once whatever their order, the
D+0/D+3/D+7 path on a moved clock, and suspension reaching the agents' desired state."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from hub.models import AuditEntry, BillingAccount, Incident, StripeEvent
from hub.services import billing, dunning
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
        actions = await AuditEntry.filter(tenant_id=t.id, action__startswith="billing.").values_list("action", flat=True)
        assert [a for a in actions if a != "billing.quantity"] == [
            "billing.trialing", "billing.past_due", "billing.restricted", "billing.suspended", "billing.active"]
        told = await Incident.filter(tenant_id=t.id, kind="billing").order_by("opened_at")
        assert [(i.subject, i.state) for i in told] == [  # a message for each step, each resolved by the next
            ("past_due", "resolved"), ("restricted", "resolved"), ("suspended", "resolved")]


# ---- the fake's contract ------------------------------------------------------------

def test_the_fake_answers_with_stripes_own_keys(stripe_fake):
    import stripe

    sc = stripe.StripeClient("sk_test_fake", base_addresses={"api": stripe_fake.url})
    customer = sc.v1.customers.create({"name": "t"})
    product = sc.v1.products.create({"name": "p"})
    price = sc.v1.prices.create({"product": product.id, "unit_amount": 300, "currency": "eur",
                                 "tax_behavior": "exclusive", "recurring": {"interval": "month"}, "lookup_key": "k"})
    sub = sc.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id, "quantity": 2}],
                                      "trial_period_days": 7})
    item = sc.v1.subscription_items.update(sub["items"].data[0].id, {"quantity": 3})
    for resource, obj in (("customer", customer), ("product", product), ("price", price),
                          ("subscription", sub), ("subscription_item", item)):
        assert set(obj.to_dict()) == set(FIXTURES[resource]), resource  # as the library reads it
        got = stripe_fake.objects[obj.id]  # as it was sent
        for key, value in FIXTURES[resource].items():
            if value is not None and got[key] is not None:
                assert type(got[key]) is type(value) or {type(got[key]), type(value)} <= {int, float}, (resource, key)
