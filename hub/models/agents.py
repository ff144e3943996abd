"""Enrolled agents and the join tokens that enrol them (each good for `max_uses` servers)."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class JoinToken(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="join_tokens", on_delete=fields.CASCADE)
    secret_hash = fields.CharField(max_length=64, unique=True)
    labels = fields.JSONField(default=list)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)  # the last enrolment with it
    used_by = fields.UUIDField(null=True)  # the last agent it enrolled
    max_uses = fields.IntField(default=1)
    uses = fields.IntField(default=0)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "join_token"


class Agent(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="agents", on_delete=fields.CASCADE)
    credential_hash = fields.CharField(max_length=64)
    hostname = fields.CharField(max_length=255, default="")
    labels = fields.JSONField(default=list)
    inventory = fields.JSONField(default=dict)
    enabled = fields.BooleanField(default=True)
    revoked_at = fields.DatetimeField(null=True)
    enrolled_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(null=True)
    # What the hub wants this agent to run; None means no deployment yet.
    deployment = fields.ForeignKeyField("hub.Deployment", related_name="agents", null=True, on_delete=fields.SET_NULL)
    # Reported by the agent.
    applied_digest = fields.CharField(max_length=64, null=True)
    list_revisions = fields.JSONField(default=dict)
    last_status = fields.JSONField(default=dict)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "agent"
