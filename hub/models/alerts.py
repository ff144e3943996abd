"""Alerts: where a tenant wants to hear of trouble, what counts as trouble, the incidents
raised, and the outbox, the one place messages leave the hub from (with their retries)."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class AlertChannel(Model):
    """One destination of a tenant's alerts: an email address or a webhook endpoint."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="alert_channels", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=16)  # email | webhook | slack | discord
    name = fields.CharField(max_length=100)
    # An email address; for a webhook kind, only its masked form (outbox.mask_url): the
    # URL itself often carries the endpoint's token (Slack, Discord), so it is in `url`, sealed.
    target = fields.CharField(max_length=500)
    url = fields.CharField(max_length=1200, default="")  # sealed (hub.services.sealing); "" for email
    # Webhooks sign with it (HMAC-SHA256). Sealed (hub.services.sealing).
    secret = fields.CharField(max_length=400, default="")
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "alert_channel"


class AlertRule(Model):
    """A tenant's setting for one kind of alert (defaults apply where no row exists)."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="alert_rules", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=32)
    enabled = fields.BooleanField(default=True)
    params = fields.JSONField(default=dict)
    quiet_s = fields.IntField(default=600)
    updated_at = fields.DatetimeField(auto_now=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "alert_rule"
        unique_together = (("tenant", "kind"),)


class Incident(Model):
    """One ongoing (or resolved) problem: many observations of the same kind and subject
    make one incident, and one message when it opens and one when it resolves."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="incidents", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=32)
    subject = fields.CharField(max_length=200)  # what it is about: an agent id, a list id...
    summary = fields.CharField(max_length=500)
    details = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default="open")  # open | resolved
    observations = fields.IntField(default=1)
    opened_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "incident"
        indexes = (("tenant_id", "kind", "subject"),)


class OutboxMessage(Model):
    """A message to send, sent, or given up on (the dead letter, which can be replayed)."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant_id = fields.UUIDField(null=True, db_index=True)
    channel_id = fields.UUIDField(null=True)
    kind = fields.CharField(max_length=16)  # email | webhook | slack | discord
    # The address; for a webhook kind the channel's masked URL (delivery opens the channel's `url`).
    target = fields.CharField(max_length=500)
    subject = fields.CharField(max_length=300, default="")
    body = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default="pending")  # pending | sent | dead
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "outbox_message"
        indexes = (("state", "next_attempt_at"),)
