"""The marketplace (templates published by platform operators, shared by every tenant)
and the library (a tenant's saved configurations: its policies, with tags and origin)."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class Template(Model):
    """A marketplace template: its versions are immutable once published."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    slug = fields.CharField(max_length=63, unique=True)
    title = fields.CharField(max_length=80)
    summary = fields.CharField(max_length=300)
    tags = fields.JSONField(default=list)
    latest_version = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "market_template"


class TemplateVersion(Model):
    """One published version: the template file as published and what the pipeline ran."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    template = fields.ForeignKeyField("hub.Template", related_name="versions", on_delete=fields.CASCADE)
    version = fields.IntField()
    source = fields.TextField()
    report = fields.JSONField(default=dict)
    published_by = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "market_template_version"
        unique_together = (("template", "version"),)


class LibraryEntry(Model):
    """What the library adds to a policy: a description, tags, and the template version
    and parameters it was rendered from (null for a policy written by hand)."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="library", on_delete=fields.CASCADE)
    policy = fields.OneToOneField("hub.Policy", related_name="library_entry", on_delete=fields.CASCADE)
    description = fields.CharField(max_length=500, default="")
    tags = fields.JSONField(default=list)
    template_slug = fields.CharField(max_length=63, null=True)
    template_version = fields.IntField(null=True)
    parameters = fields.JSONField(default=dict)
    cloned_from = fields.UUIDField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "library_entry"
