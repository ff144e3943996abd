"""The assistant's use per tenant and window, shared by every hub process (the caps)."""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class AssistantUsage(Model):
    """One tenant's assistant use in one fixed window: requests per clock hour, tokens per UTC
    day. `used` only changes by an atomic UPDATE that keeps it within the cap."""
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField()
    kind = fields.CharField(max_length=8)  # requests | tokens
    window_start = fields.BigIntField()  # unix seconds
    used = fields.BigIntField(default=0)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "assistant_usage"
        unique_together = (("tenant_id", "kind", "window_start"),)
