"""The append-only, hash-chained audit log."""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class AuditEntry(Model):
    # seq is dense (1, 2, 3, ...): a gap means an entry was removed.
    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(unique=True)
    tenant_id = fields.UUIDField(null=True, db_index=True)
    actor = fields.CharField(max_length=200)
    action = fields.CharField(max_length=64)
    target = fields.CharField(max_length=200, default="")
    address = fields.CharField(max_length=64, default="")
    at = fields.DatetimeField()
    details = fields.JSONField(default=dict)
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)
    # Format 2 (hub.services.audit): the chain covers keyed hashes of the personal fields,
    # so erasure can pseudonymise actor, target and address and the chain still verifies.
    fmt = fields.SmallIntField(default=1)
    actor_hash = fields.CharField(max_length=64, default="")
    target_hash = fields.CharField(max_length=64, default="")
    address_hash = fields.CharField(max_length=64, default="")

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "audit_entry"
