"""Policies (versioned DSL source) and deployments (immutable compiled Plans)."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class Policy(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="policies", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200)
    latest_version = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "policy"
        unique_together = (("tenant", "name"),)


class PolicyVersion(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    policy = fields.ForeignKeyField("hub.Policy", related_name="versions", on_delete=fields.CASCADE)
    version = fields.IntField()
    source = fields.TextField()
    diagnostics = fields.JSONField(default=list)
    error_count = fields.IntField(default=0)
    warning_count = fields.IntField(default=0)
    plan_json = fields.TextField(null=True)
    plan_digest = fields.CharField(max_length=64, null=True)
    created_by = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "policy__tenant_id"

    class Meta:
        table = "policy_version"
        unique_together = (("policy", "version"),)


class Deployment(Model):
    """Immutable once created: the Plan, its digest and the targets never change.

    `state` tracks the rollout of that snapshot, not the snapshot itself: a
    `hub.rollout.State`, moved only along `hub.rollout.TRANSITIONS`.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="deployments", on_delete=fields.CASCADE)
    policy_version = fields.ForeignKeyField("hub.PolicyVersion", related_name="deployments", null=True, on_delete=fields.SET_NULL)
    plan_digest = fields.CharField(max_length=64, db_index=True)
    plan_json = fields.TextField()
    target_agents = fields.JSONField(default=list)
    target_labels = fields.JSONField(default=list)
    canary_agents = fields.JSONField(default=list)
    monitor = fields.BooleanField(default=False)
    state = fields.CharField(max_length=16, default="canary")
    rollback_of = fields.UUIDField(null=True)
    created_by = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "deployment"


class DeploymentTarget(Model):
    id = fields.IntField(primary_key=True)
    deployment = fields.ForeignKeyField("hub.Deployment", related_name="targets", on_delete=fields.CASCADE)
    agent = fields.ForeignKeyField("hub.Agent", related_name="deployment_targets", on_delete=fields.CASCADE)
    canary = fields.BooleanField(default=False)
    # a hub.rollout.TargetStatus, moved only along hub.rollout.TARGET_TRANSITIONS
    status = fields.CharField(max_length=16, default="pending")
    previous_deployment_id = fields.UUIDField(null=True)
    error = fields.TextField(default="")

    TENANT_PATH = "deployment__tenant_id"

    class Meta:
        table = "deployment_target"
        unique_together = (("deployment", "agent"),)
