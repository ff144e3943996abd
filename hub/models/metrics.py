"""Per-rule counters from agents: raw points for a short window, rollups for longer."""
from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class MetricPoint(Model):
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField()
    agent_id = fields.UUIDField()
    rule = fields.CharField(max_length=200)
    ts = fields.BigIntField()  # unix seconds
    packets = fields.BigIntField(default=0)
    bytes = fields.BigIntField(default=0)
    interval_s = fields.IntField(default=1)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "metric_point"
        indexes = (("tenant_id", "ts"), ("agent_id", "rule", "ts"))


class MetricRollup(Model):
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField()
    agent_id = fields.UUIDField()
    rule = fields.CharField(max_length=200)
    bucket = fields.BigIntField()  # unix seconds, start of the bucket
    resolution_s = fields.IntField()
    packets = fields.BigIntField(default=0)
    bytes = fields.BigIntField(default=0)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "metric_rollup"
        unique_together = (("agent_id", "rule", "resolution_s", "bucket"),)
        indexes = (("tenant_id", "bucket"),)


class TopSource(Model):
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField()
    agent_id = fields.UUIDField()
    ts = fields.BigIntField()
    source = fields.CharField(max_length=64)
    packets = fields.BigIntField(default=0)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "top_source"
        indexes = (("tenant_id", "ts"),)


class TrafficAggregate(Model):
    """What agents dropped per protocol, destination port and size bucket (rules_dsl.traffic):
    aggregates, no addresses."""
    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField()
    agent_id = fields.UUIDField()
    ts = fields.BigIntField()
    kind = fields.CharField(max_length=8)
    proto = fields.SmallIntField()
    value = fields.IntField()
    packets = fields.BigIntField(default=0)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "traffic_aggregate"
        indexes = (("tenant_id", "ts"), ("agent_id", "ts"))
