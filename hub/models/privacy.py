"""Erasure: the requests to erase a closed account or tenant, and the minimised billing
records the law makes us keep after the rest is gone."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class ErasureRequest(Model):
    """One closed account or tenant to erase, its progress (steps done), and its report."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    kind = fields.CharField(max_length=8)  # user | tenant
    subject_id = fields.UUIDField(db_index=True)
    requested_at = fields.DatetimeField()
    due_at = fields.DatetimeField()
    state = fields.CharField(max_length=16, default="scheduled")  # scheduled | done
    steps_done = fields.JSONField(default=list)
    report = fields.JSONField(default=dict)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "erasure_request"
        unique_together = (("kind", "subject_id"),)


class BillingRecord(Model):
    """What remains of a closed tenant's billing: the ids that name its invoices at Stripe,
    kept until `keep_until` (10 years, the commercial law's term), then deleted."""
    id = fields.IntField(primary_key=True)
    tenant_id = fields.UUIDField(db_index=True)
    customer_id = fields.CharField(max_length=100, null=True)
    subscription_id = fields.CharField(max_length=100, null=True)
    last_state = fields.CharField(max_length=16)
    last_quantity = fields.IntField(default=0)
    closed_at = fields.DatetimeField()
    keep_until = fields.DatetimeField()

    class Meta:
        table = "billing_record"
