"""Billing per protected server: one Stripe customer and one subscription per tenant,
whose quantity is the tenant's active agents, on a Price of 3.00 EUR excl. tax a month.

Invariants:
- The only module that talks to Stripe (through the official library's StripeClient).
- Quantity changes are ordered per tenant (`quantity_seq`, under a lock) and idempotent:
  the idempotency key names the tenant and the change's number, so a retried call is
  the same call to Stripe.
- The first agent a tenant ever has starts a 7-day trial, once per tenant ever; no card
  is needed, and a trial that ends without one creates an invoice that fails: the
  dunning path of `hub.services.dunning`.
- Webhooks: the raw body is verified with the library (300 s tolerance); each event id is
  stored before it is handled, so a duplicate (even one arriving at the same moment) is
  handled once; handling re-fetches the subscription, so order of delivery cannot move a
  state backwards.
- Every state change is an audit entry and reaches the agents (suspension deactivates).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import stripe
from tortoise.exceptions import IntegrityError

from hub.errors import Forbidden, InvalidInput, Unavailable
from hub.models import Agent, BillingAccount, StripeEvent, Tenant
from hub.runtime import Runtime
from hub.services import dunning
from hub.services.agents import tenant_channel
from hub.services.background import job

log = logging.getLogger("bulwark.hub.billing")

UNIT_AMOUNT = 300  # EUR cents per agent per month, excl. tax
CURRENCY = "eur"
PRICE_TEXT = "3.00 EUR excl. tax per agent per month"
_locks: dict[uuid.UUID, asyncio.Lock] = {}


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def enabled(rt: Runtime) -> bool:
    return bool(rt.config.stripe_api_key)


def client(rt: Runtime) -> stripe.StripeClient:
    base = {"api": rt.config.stripe_api_base} if rt.config.stripe_api_base else None
    return stripe.StripeClient(rt.config.stripe_api_key, base_addresses=base, max_network_retries=2)


async def _stripe(call, *args, **kwargs):
    """A Stripe call, in a worker thread (the library's async client hands httpx raw bytes
    as `data=`, which httpx deprecates); the world failing is Unavailable (503)."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except stripe.StripeError as exc:
        raise Unavailable(f"Stripe: {exc.user_message or type(exc).__name__}") from exc


# ---- the gates ----------------------------------------------------------------------

async def state_of(tenant_id: uuid.UUID) -> str:
    account = await BillingAccount.get_or_none(tenant_id=tenant_id)
    return account.state if account else "none"


async def require(tenant_id: uuid.UUID, what: str) -> None:
    """Raises Forbidden when the tenant's billing state does not allow `what`
    ("new_agents" or "deploy")."""
    state = await state_of(tenant_id)
    if not dunning.ALLOWS[state][what]:
        raise Forbidden(f"billing is {state}: {what.replace('_', ' ')} are paused until the invoice is paid")


# ---- the subscription follows the agents ---------------------------------------------

async def _price_id(rt: Runtime, sc: stripe.StripeClient) -> str:
    key = rt.config.stripe_price_lookup_key
    found = await _stripe(sc.v1.prices.list, {"lookup_keys": [key], "active": True, "limit": 1})
    if found.data:
        return found.data[0].id
    product = await _stripe(sc.v1.products.create, {"name": "Bulwark protected server"},
                            {"idempotency_key": f"product:{key}"})
    price = await _stripe(sc.v1.prices.create, {
        "product": product.id, "unit_amount": UNIT_AMOUNT, "currency": CURRENCY, "tax_behavior": "exclusive",
        "recurring": {"interval": "month"}, "lookup_key": key}, {"idempotency_key": f"price:{key}"})
    return price.id


async def active_agents(tenant_id: uuid.UUID) -> int:
    return await Agent.filter(tenant_id=tenant_id, revoked_at=None, enabled=True).count()


async def sync_quantity(rt: Runtime, tenant_id: uuid.UUID) -> BillingAccount | None:
    """Make the subscription's quantity the tenant's active agents (prorated)."""
    if not enabled(rt):
        return None
    lock = _locks.setdefault(tenant_id, asyncio.Lock())
    async with lock:
        account, _ = await BillingAccount.get_or_create(tenant_id=tenant_id)
        quantity = await active_agents(tenant_id)
        if quantity == account.quantity and account.subscription_id:
            return account
        sc = client(rt)
        account.quantity_seq += 1
        key = f"bulwark:{tenant_id}:{account.quantity_seq}"
        if account.customer_id is None:
            tenant = await Tenant.get(id=tenant_id)
            customer = await _stripe(sc.v1.customers.create, {
                "name": tenant.name, "metadata": {"tenant_id": str(tenant_id)}}, {"idempotency_key": f"{key}:customer"})
            account.customer_id = customer.id
        if account.subscription_id is None:
            if quantity == 0:
                await account.save()
                return account
            params: dict[str, Any] = {
                "customer": account.customer_id, "items": [{"price": await _price_id(rt, sc), "quantity": quantity}],
                "metadata": {"tenant_id": str(tenant_id)}, "proration_behavior": "create_prorations",
                "payment_settings": {"save_default_payment_method": "on_subscription"},
            }
            if not account.trial_used:
                params["trial_period_days"] = rt.config.billing_trial_days
                params["trial_settings"] = {"end_behavior": {"missing_payment_method": "create_invoice"}}
            sub = await _stripe(sc.v1.subscriptions.create, params, {"idempotency_key": key})
            account.subscription_id, account.item_id = sub.id, sub["items"].data[0].id
            account.trial_used = True
            await _apply_status(rt, account, sub.status, actor="hub")
        else:
            await _stripe(sc.v1.subscription_items.update, account.item_id, {
                "quantity": quantity, "proration_behavior": "create_prorations"}, {"idempotency_key": key})
        account.quantity = quantity
        await account.save()
        await rt.audit.append(actor="hub", action="billing.quantity", tenant_id=tenant_id,
                              details={"quantity": quantity, "seq": account.quantity_seq})
        return account


async def agents_changed(rt: Runtime, tenant_id: uuid.UUID) -> None:
    """After an agent was enrolled, revoked, enabled or disabled. Stripe being away
    never fails the change itself: the hourly reconcile catches up."""
    try:
        await sync_quantity(rt, tenant_id)
    except Unavailable as exc:
        log.warning("billing: quantity of tenant %s not synced yet: %s", tenant_id, exc)


@job("billing.reconcile", every_s=3600)
async def reconcile_job(rt: Runtime) -> None:
    if not enabled(rt):
        return
    for account in await BillingAccount.all():
        if account.quantity != await active_agents(account.tenant_id):
            await agents_changed(rt, account.tenant_id)


# ---- state changes ------------------------------------------------------------------

async def _move(rt: Runtime, account: BillingAccount, event: str, *, actor: str, now: dt.datetime | None = None) -> bool:
    before = account.state
    after = dunning.step(before, event)
    if after == before:
        return False
    now = now or now_utc()
    account.state = after
    if after == "past_due" and account.past_due_since is None:
        account.past_due_since = now
    if after in ("active", "trialing", "canceled"):
        account.past_due_since = None
    await account.save(update_fields=["state", "past_due_since", "updated_at"])
    suspended = not dunning.ALLOWS[after]["protect"]
    if suspended != (not dunning.ALLOWS[before]["protect"]):
        await Tenant.filter(id=account.tenant_id).update(suspended=suspended)
        await rt.notifier.publish(tenant_channel(account.tenant_id))
    await rt.audit.append(actor=actor, action=f"billing.{after}", tenant_id=account.tenant_id,
                          details={"from": before, "event": event})
    from hub.services import alerts

    # one incident per troubled state, so every step of the dunning path is a message
    await alerts.resolve(rt, account.tenant_id, "billing", before, now=now)
    if after in ("past_due", "restricted", "suspended"):
        await alerts.observe(rt, account.tenant_id, "billing", after, f"billing is {after}: {_WHY[after]}",
                             {"from": before, "to": after}, now=now)
    return True


async def _apply_status(rt: Runtime, account: BillingAccount, status: str, *, actor: str) -> None:
    event = dunning.event_of_subscription(status)
    if event is not None:
        await _move(rt, account, event, actor=actor)


_WHY = {
    "past_due": "the last payment failed; features are restricted in 3 days",
    "restricted": "no new agents or deployments until the invoice is paid; protections stay",
    "suspended": "protections are deactivated on every agent until the invoice is paid",
}


@job("billing.dunning", every_s=3600)
async def dunning_job(rt: Runtime, *, now: dt.datetime | None = None) -> None:
    """D+3 restricted, D+7 suspended, counted from the first failed payment."""
    now = now or now_utc()
    for account in await BillingAccount.filter(state__in=["past_due", "restricted"]):
        for event in dunning.clock_events(account.past_due_since, now):
            await _move(rt, account, event, actor="hub", now=now)


# ---- webhooks -----------------------------------------------------------------------

RELEVANT = ("customer.subscription.", "invoice.paid", "invoice.payment_failed", "invoice.payment_succeeded")


async def webhook(rt: Runtime, payload: bytes, signature: str | None) -> dict[str, Any]:
    """Verify, store, handle once. Raises InvalidInput for a bad signature or body."""
    if not rt.config.stripe_webhook_secret:
        raise InvalidInput("billing webhooks are not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, rt.config.stripe_webhook_secret, tolerance=300)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidInput(f"the Stripe signature does not verify: {exc}") from None
    try:
        await StripeEvent.create(id=event.id, type=event.type)
    except IntegrityError:
        return {"received": True, "duplicate": True}
    if event.type.startswith(RELEVANT):
        obj = event.data.object.to_dict()
        sub_id = obj.get("subscription") if obj.get("object") == "invoice" else obj.get("id")
        if isinstance(sub_id, dict):
            sub_id = sub_id.get("id")
        if sub_id:
            await _refresh(rt, sub_id)
    await StripeEvent.filter(id=event.id).update(handled_at=now_utc())
    return {"received": True}


async def _refresh(rt: Runtime, subscription_id: str) -> None:
    """The subscription as Stripe has it now decides the state, whatever the event said."""
    account = await BillingAccount.get_or_none(subscription_id=subscription_id)
    if account is None:
        return
    sub = await _stripe(client(rt).v1.subscriptions.retrieve, subscription_id)
    await _apply_status(rt, account, sub.status, actor="stripe")


async def summary(tenant_id: uuid.UUID) -> dict[str, Any]:
    account = await BillingAccount.get_or_none(tenant_id=tenant_id)
    state = account.state if account else "none"
    return {"state": state, "price": PRICE_TEXT, "unit_amount": UNIT_AMOUNT, "currency": CURRENCY,
            "quantity": account.quantity if account else 0, "trial_used": bool(account and account.trial_used),
            "past_due_since": account.past_due_since if account else None,
            "allows": dunning.ALLOWS[state]}
