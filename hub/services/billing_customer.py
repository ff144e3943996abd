"""The customer's side of billing: the card through Stripe Checkout, the customer portal
(cancel at period end, invoices, payment), the invoices, and the next invoice's estimate
with its proration preview.

Invariants:
- Checkout runs in `mode=setup`: it only saves a card. The subscription exists from the
  first agent on (its trial needs no card); the card saved becomes the customer's and the
  subscription's default payment method when `checkout.session.completed` arrives, read
  back from Stripe (never from the event's body).
- Every amount is Stripe's, in cents, excluding tax (the Price is `tax_behavior=exclusive`);
  the hub computes no money here, it only shows what Stripe previews.
- A tenant without a Stripe customer has no invoices and no estimate (None), not an error.

Raises Unavailable (503) when Stripe fails, NotFound when billing is not configured.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hub.errors import NotFound
from hub.models import BillingAccount
from hub.runtime import Runtime
from hub.services import billing
from hub.services.billing import client, money, stripe_call

INVOICES_SHOWN = 24


def _configured(rt: Runtime) -> None:
    if not billing.enabled(rt):
        raise NotFound("billing (this hub bills nobody)")


async def _account(tenant_id: uuid.UUID) -> BillingAccount:
    account, _ = await BillingAccount.get_or_create(tenant_id=tenant_id)
    return account


async def checkout_url(rt: Runtime, tenant_id: uuid.UUID, *, success_url: str, cancel_url: str) -> str:
    """A Checkout page (Stripe-hosted) where the tenant's owner types a card."""
    _configured(rt)
    sc = client(rt)
    account = await _account(tenant_id)
    customer = await billing.ensure_customer(sc, account)
    session = await stripe_call(sc.v1.checkout.sessions.create, {
        "mode": "setup", "customer": customer, "currency": billing.CURRENCY,
        "success_url": success_url, "cancel_url": cancel_url, "client_reference_id": str(tenant_id),
        "metadata": {"tenant_id": str(tenant_id)},
        "setup_intent_data": {"metadata": {"tenant_id": str(tenant_id)}},
    })
    return session.url


async def portal_url(rt: Runtime, tenant_id: uuid.UUID, *, return_url: str) -> str:
    """Stripe's customer portal: cancel at period end (no refund), invoices, payment."""
    _configured(rt)
    sc = client(rt)
    customer = await billing.ensure_customer(sc, await _account(tenant_id))
    session = await stripe_call(sc.v1.billing_portal.sessions.create, {"customer": customer, "return_url": return_url})
    return session.url


async def card_saved(rt: Runtime, session_id: str) -> None:
    """After `checkout.session.completed`: the session's card becomes the default."""
    sc = client(rt)
    session = await stripe_call(sc.v1.checkout.sessions.retrieve, session_id)
    account = await BillingAccount.get_or_none(customer_id=session.customer) if session.customer else None
    if account is None or session.mode != "setup" or session.status != "complete" or not session.setup_intent:
        return
    intent_id = session.setup_intent if isinstance(session.setup_intent, str) else session.setup_intent.id
    intent = await stripe_call(sc.v1.setup_intents.retrieve, intent_id)
    if intent.status != "succeeded" or not intent.payment_method:
        return
    pm_id = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
    await stripe_call(sc.v1.customers.update, account.customer_id,
                      {"invoice_settings": {"default_payment_method": pm_id}},
                      {"idempotency_key": f"bulwark:{account.tenant_id}:card:{pm_id}"})
    if account.subscription_id:
        await stripe_call(sc.v1.subscriptions.update, account.subscription_id, {"default_payment_method": pm_id},
                          {"idempotency_key": f"bulwark:{account.tenant_id}:sub-card:{pm_id}"})
    pm = await stripe_call(sc.v1.payment_methods.retrieve, pm_id)
    card = pm.card
    account.card = f"{card.brand} •••• {card.last4}" if card else pm.type
    await account.save(update_fields=["card", "updated_at"])
    await rt.audit.append(actor="stripe", action="billing.card", tenant_id=account.tenant_id,
                          details={"card": account.card})


def _when(ts: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts else None


def _line(line: Any) -> dict[str, Any]:
    parent = line.parent.subscription_item_details if line.parent else None
    return {"description": line.description or "", "amount": line.amount, "amount_text": money(line.amount, line.currency),
            "quantity": line.quantity, "proration": bool(parent and parent.proration),
            "period_start": _when(line.period.start), "period_end": _when(line.period.end)}


async def invoices(rt: Runtime, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """The tenant's invoices, newest first (Stripe's hosted page and PDF linked)."""
    _configured(rt)
    account = await BillingAccount.get_or_none(tenant_id=tenant_id)
    if account is None or account.customer_id is None:
        return []
    found = await stripe_call(client(rt).v1.invoices.list, {"customer": account.customer_id, "limit": INVOICES_SHOWN})
    return [{"id": inv.id, "number": inv.number, "created": _when(inv.created), "status": inv.status,
             "total": inv.total, "total_text": money(inv.total, inv.currency), "currency": inv.currency,
             "period_start": _when(inv.period_start), "period_end": _when(inv.period_end),
             "hosted_invoice_url": inv.hosted_invoice_url, "invoice_pdf": inv.invoice_pdf} for inv in found.data]


async def estimate(rt: Runtime, tenant_id: uuid.UUID, agents: int | None = None,
                   at: dt.datetime | None = None) -> dict[str, Any] | None:
    """The next invoice as Stripe previews it (`invoices.create_preview`): the prorations
    of this period's changes and the next period. With `agents`, as if the quantity were
    changed to it at `at` (default: Stripe's now): the proration that change would add."""
    _configured(rt)
    account = await BillingAccount.get_or_none(tenant_id=tenant_id)
    if account is None or account.subscription_id is None or account.state == "canceled":
        return None
    params: dict[str, Any] = {"customer": account.customer_id, "subscription": account.subscription_id}
    if agents is not None and agents != account.quantity:
        details: dict[str, Any] = {"items": [{"id": account.item_id, "quantity": agents}],
                                   "proration_behavior": "create_prorations"}
        if at is not None:  # else Stripe's now (a test clock's, for a customer on one)
            details["proration_date"] = int(at.timestamp())
        params["subscription_details"] = details
    inv = await stripe_call(client(rt).v1.invoices.create_preview, params)
    lines = [_line(line) for line in inv.lines.data]
    prorations = sum(line["amount"] for line in lines if line["proration"])
    return {"agents": account.quantity if agents is None else agents, "currency": inv.currency,
            "subtotal": inv.subtotal, "total_excluding_tax": inv.total_excluding_tax,
            "total_excluding_tax_text": f"{money(inv.total_excluding_tax, inv.currency)} excl. tax",
            "proration": prorations, "proration_text": money(prorations, inv.currency),
            "billed_at": min((line["period_start"] for line in lines if not line["proration"] and line["period_start"]),
                             default=None), "lines": lines}
