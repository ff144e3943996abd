"""Billing: a tenant's Stripe customer and subscription with its dunning state, and every
Stripe event received (stored by id, so each is handled exactly once)."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class BillingAccount(Model):
    """One per tenant that ever had an agent. Kept minimal: Stripe holds the rest."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.OneToOneField("hub.Tenant", related_name="billing", on_delete=fields.CASCADE)
    customer_id = fields.CharField(max_length=100, null=True)
    subscription_id = fields.CharField(max_length=100, null=True)
    item_id = fields.CharField(max_length=100, null=True)
    state = fields.CharField(max_length=16, default="none")
    trial_used = fields.BooleanField(default=False)
    quantity = fields.IntField(default=0)
    quantity_seq = fields.IntField(default=0)  # orders quantity changes (idempotency keys)
    past_due_since = fields.DatetimeField(null=True)
    # copied from Stripe on every refresh, for the banners every panel page shows
    trial_end = fields.DatetimeField(null=True)
    period_end = fields.DatetimeField(null=True)
    cancel_at = fields.DatetimeField(null=True)  # cancelled in the portal: ends then, no refund
    card = fields.CharField(max_length=40, null=True)  # "visa •••• 4242", set once Checkout saved one
    updated_at = fields.DatetimeField(auto_now=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "billing_account"


class StripeEvent(Model):
    """A webhook event: stored first (its id is unique), handled once."""
    id = fields.CharField(max_length=100, primary_key=True)
    type = fields.CharField(max_length=100)
    received_at = fields.DatetimeField(auto_now_add=True)
    handled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "stripe_event"
