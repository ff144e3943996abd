"""IP allow/deny lists with revisions, so agents can fetch deltas.

An entry is live from `added_rev` until `removed_rev`. Removed entries stay as
tombstones for `list_delta_max_revisions` so laggards within that window get a delta.
"""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class IpList(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="ip_lists", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=8)  # allow | deny
    revision = fields.BigIntField(default=0)
    # Deltas can be computed from this revision on; older knowledge needs a snapshot.
    horizon_rev = fields.BigIntField(default=0)
    # Live entries at `revision`, kept by each change in its transaction: counting a
    # million rows per one-entry change cost it a fifth of a second.
    live_count = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "ip_list"
        unique_together = (("tenant", "name"),)


class IpEntry(Model):
    id = fields.BigIntField(primary_key=True)
    ip_list = fields.ForeignKeyField("hub.IpList", related_name="entries", on_delete=fields.NO_ACTION,
                                     db_constraint=False)
    network = fields.CharField(max_length=64)
    expires_at = fields.BigIntField(null=True)  # unix seconds
    comment = fields.CharField(max_length=200, default="")
    added_rev = fields.BigIntField()
    removed_rev = fields.BigIntField(null=True)

    TENANT_PATH = "ip_list__tenant_id"

    class Meta:
        table = "ip_entry"
        # Column names: an index on the field name "ip_list" would be an index on a string
        # literal in SQLite (which takes unknown double-quoted names as strings).
        indexes = (("ip_list_id", "network"), ("ip_list_id", "added_rev"), ("ip_list_id", "removed_rev"))
