"""Billing per protected server: one Stripe customer and one subscription per tenant,
whose quantity is the tenant's active agents, on a Price of 3.00 EUR excl. tax a month.

Invariants:
- With `hub.services.billing_customer` (Checkout, portal, invoices, the estimate), the
  only module that talks to Stripe (through the official library's StripeClient).
- Quantity changes are ordered per tenant (`quantity_seq`, under a lock, and the row
  locked on PostgreSQL) and idempotent: the idempotency key names the tenant, the
  change's number and the quantity, so a retried call is the same call to Stripe.
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
import contextlib
import datetime as dt
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import stripe
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from hub.clock import now_utc
from hub.errors import InvalidInput, PaymentRequired, Unavailable
from hub.models import Agent, BillingAccount, StripeEvent, Tenant
from hub.runtime import Runtime
from hub.services import dunning
from hub.services.agents import tenant_channel
from hub.services.background import job

log = logging.getLogger("bulwark.hub.billing")

UNIT_AMOUNT = 300  # EUR cents per agent per month, excl. tax
CURRENCY = "eur"


def money(cents: int, currency: str = CURRENCY) -> str:
    """300 → "3.00 EUR", -151 → "-1.51 EUR": whole cents, never a float."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d} {currency.upper()}"


PRICE = f"{money(UNIT_AMOUNT)} excl. tax"  # "3.00 EUR excl. tax", per agent per month
PRICE_TEXT = f"{PRICE} per agent per month"
_locks: dict[uuid.UUID, asyncio.Lock] = {}


def enabled(rt: Runtime) -> bool:
    return bool(rt.config.stripe_api_key)


def client(rt: Runtime) -> stripe.StripeClient:
    return _client(rt.config.stripe_api_key, rt.config.stripe_api_base)


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    """One client (and its connection pool) per key and address, shared by the worker
    threads the calls run in."""
    base = {"api": api_base} if api_base else None
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=2)


async def stripe_call(call, *args, **kwargs):
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


_PAUSED = {"new_agents": "no new agents can be added", "deploy": "no new deployments can be made"}


async def require(tenant_id: uuid.UUID, what: str) -> None:
    """Raises PaymentRequired (402) when the tenant's billing state does not allow `what`
    ("new_agents" or "deploy"); reads and the protections in place are never gated."""
    state = await state_of(tenant_id)
    if not dunning.ALLOWS[state][what]:
        raise PaymentRequired(f"billing is {state} (an invoice is unpaid): {_PAUSED[what]} until it is paid; "
                              "pay it or update the card on the billing page", details={"billing_state": state})


# ---- the subscription follows the agents ---------------------------------------------

async def _price_id(rt: Runtime, sc: stripe.StripeClient) -> str:
    key = rt.config.stripe_price_lookup_key
    found = await stripe_call(sc.v1.prices.list, {"lookup_keys": [key], "active": True, "limit": 1})
    if found.data:
        return found.data[0].id
    product = await stripe_call(sc.v1.products.create, {"name": "Bulwark protected server"},
                            {"idempotency_key": f"product:{key}"})
    price = await stripe_call(sc.v1.prices.create, {
        "product": product.id, "unit_amount": UNIT_AMOUNT, "currency": CURRENCY, "tax_behavior": "exclusive",
        "recurring": {"interval": "month"}, "lookup_key": key}, {"idempotency_key": f"price:{key}"})
    return price.id


async def active_agents(tenant_id: uuid.UUID) -> int:
    return await Agent.filter(tenant_id=tenant_id, revoked_at=None, enabled=True).count()


@contextlib.asynccontextmanager
async def _serialized(rt: Runtime, tenant_id: uuid.UUID) -> AsyncIterator[BillingAccount]:
    """The tenant's account, one quantity change at a time: an asyncio lock in this
    process and, on PostgreSQL (several hub processes), the row locked FOR UPDATE.
    SQLite serves one process, and a transaction there would hold every other query
    for as long as Stripe takes to answer."""
    lock = _locks.setdefault(tenant_id, asyncio.Lock())
    async with lock:
        await BillingAccount.get_or_create(tenant_id=tenant_id)
        if rt.config.is_sqlite:
            yield await BillingAccount.get(tenant_id=tenant_id)
            return
        async with in_transaction():
            yield await BillingAccount.select_for_update().get(tenant_id=tenant_id)


async def ensure_customer(sc: stripe.StripeClient, account: BillingAccount) -> str:
    """The tenant's one Stripe customer, made on first need (the key makes a retry the
    same customer)."""
    if account.customer_id is None:
        tenant = await Tenant.get(id=account.tenant_id)
        customer = await stripe_call(sc.v1.customers.create, {
            "name": tenant.name, "metadata": {"tenant_id": str(account.tenant_id)}},
            {"idempotency_key": f"bulwark:{account.tenant_id}:customer"})
        account.customer_id = customer.id
        await account.save(update_fields=["customer_id", "updated_at"])
    return account.customer_id


async def sync_quantity(rt: Runtime, tenant_id: uuid.UUID) -> BillingAccount | None:
    """Make the subscription's quantity the tenant's active agents (prorated).

    The idempotency key names the tenant, the change's number and the quantity it sets:
    the library's retries and a hub retrying after a lost answer make the same call, and
    the number is stored only once Stripe has answered."""
    if not enabled(rt):
        return None
    async with _serialized(rt, tenant_id) as account:
        quantity = await active_agents(tenant_id)
        if quantity == account.quantity and (account.subscription_id or quantity == 0):
            return account
        sc = client(rt)
        seq = account.quantity_seq + 1
        key = f"bulwark:{tenant_id}:{seq}:{quantity}"
        await ensure_customer(sc, account)
        if account.subscription_id is None:
            if quantity == 0:
                return account
            params: dict[str, Any] = {
                "customer": account.customer_id, "items": [{"price": await _price_id(rt, sc), "quantity": quantity}],
                "metadata": {"tenant_id": str(tenant_id)}, "proration_behavior": "create_prorations",
                "payment_settings": {"save_default_payment_method": "on_subscription"},
            }
            if not account.trial_used:
                params["trial_period_days"] = rt.config.billing_trial_days
                params["trial_settings"] = {"end_behavior": {"missing_payment_method": "create_invoice"}}
            sub = await stripe_call(sc.v1.subscriptions.create, params, {"idempotency_key": f"{key}:subscription"})
            account.subscription_id, account.item_id = sub.id, sub["items"].data[0].id
            account.trial_used = True
            copy_subscription(account, sub)
            await _apply_status(rt, account, sub.status, actor="hub")
        else:
            await stripe_call(sc.v1.subscription_items.update, account.item_id, {
                "quantity": quantity, "proration_behavior": "create_prorations"}, {"idempotency_key": key})
        account.quantity, account.quantity_seq = quantity, seq
        await account.save()
    await rt.audit.append(actor="hub", action="billing.quantity", tenant_id=tenant_id,
                          details={"quantity": quantity, "seq": seq})
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

RELEVANT = ("customer.subscription.", "invoice.paid", "invoice.payment_failed", "invoice.payment_succeeded",
            "checkout.session.completed")


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
    if event.type == "checkout.session.completed":
        from hub.services import billing_customer

        await billing_customer.card_saved(rt, event.data.object.id)
    elif event.type.startswith(RELEVANT):
        for sub_id in subscriptions_of(event.data.object.to_dict()):
            await _refresh(rt, sub_id)
    await StripeEvent.filter(id=event.id).update(handled_at=now_utc())
    return {"received": True}


def subscriptions_of(obj: dict[str, Any]) -> list[str]:
    """The subscription an event's object is about: itself, or an invoice's (in the
    current API under `parent.subscription_details`, in older ones at the top). Ids the
    hub does not know are skipped by `_refresh` without a call to Stripe."""
    if obj.get("object") == "subscription":
        return [obj["id"]] if obj.get("id") else []
    parent = (obj.get("parent") or {}).get("subscription_details") or {}
    found = [parent.get("subscription"), obj.get("subscription")]
    return list(dict.fromkeys(f.get("id") if isinstance(f, dict) else f for f in found if f))


async def _refresh(rt: Runtime, subscription_id: str) -> None:
    """The subscription as Stripe has it now decides the state, whatever the event said."""
    account = await BillingAccount.get_or_none(subscription_id=subscription_id)
    if account is None:
        return
    sub = await stripe_call(client(rt).v1.subscriptions.retrieve, subscription_id)
    copy_subscription(account, sub)
    await account.save(update_fields=["trial_end", "period_end", "cancel_at", "updated_at"])
    await _apply_status(rt, account, sub.status, actor="stripe")


def _when(ts: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts else None


def copy_subscription(account: BillingAccount, sub: Any) -> None:
    """What the banners need, from a subscription Stripe sent (not saved here)."""
    items = sub["items"].data
    account.trial_end = _when(sub.trial_end) if sub.status == "trialing" else None
    account.period_end = _when(items[0].current_period_end) if items else None
    account.cancel_at = _when(sub.cancel_at) or (account.period_end if sub.cancel_at_period_end else None)


async def summary(tenant_id: uuid.UUID) -> dict[str, Any]:
    """The tenant's billing as the API and the panel show it, from the hub's own rows
    (no call to Stripe: every panel page's banner reads it)."""
    account = await BillingAccount.get_or_none(tenant_id=tenant_id)
    state = account.state if account else "none"
    since = account.past_due_since if account else None
    return {"state": state, "price": PRICE_TEXT, "unit_amount": UNIT_AMOUNT, "currency": CURRENCY,
            "quantity": account.quantity if account else 0, "trial_used": bool(account and account.trial_used),
            "past_due_since": since,
            "restricted_at": since + dunning.RESTRICTED_AT if since else None,
            "suspended_at": since + dunning.SUSPENDED_AT if since else None,
            "trial_end": account.trial_end if account else None,
            "period_end": account.period_end if account else None,
            "cancel_at": account.cancel_at if account else None,
            "card": account.card if account else None,
            "allows": dunning.ALLOWS[state]}
