"""Alerts in the public API: rules, channels, incidents, the outbox's dead letters."""
from __future__ import annotations

import secrets
from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_querystring, validate_request

from hub.api_schemas.alerts import (
    ChannelCreated,
    ChannelIn,
    ChannelsOut,
    IncidentQuery,
    IncidentsOut,
    MessageOut,
    MessagesOut,
    OutboxQuery,
    RuleIn,
    RuleOut,
    RulesOut,
)
from hub.api_schemas.common import BODY_ERRORS, INPUT_ERRORS, TENANT_ERRORS, Strict, responds
from hub.errors import NotFound
from hub.models import AlertChannel, Incident, OutboxMessage
from hub.services import alerts, outbox
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("alerts", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/alerts")
tag_blueprint(bp, ["alerts"])


def _rule(s: alerts.Setting) -> dict[str, Any]:
    return {"kind": s.kind, "title": alerts.KINDS[s.kind].title, "enabled": s.enabled, "params": s.params,
            "quiet_s": s.quiet_s}


async def _channels(scope: TenantScope) -> dict[str, Any]:
    return {"channels": [_channel(c) for c in await scope.query(AlertChannel).order_by("created_at")]}


async def _newest(scope: TenantScope, model: type, newest_by: str, query_args: Strict) -> list[Any]:
    """This tenant's rows of `model` matching every filter the query sets (all its fields
    but `limit`), newest first, at most `limit`: the one reading of the history lists."""
    filters = {k: v for k, v in query_args.model_dump(exclude={"limit"}).items() if v}
    return await scope.query(model).filter(**filters).order_by(f"-{newest_by}").limit(query_args.limit)


def _channel(c: AlertChannel) -> dict[str, Any]:
    return {"id": c.id, "kind": c.kind, "name": c.name, "target": c.target, "enabled": c.enabled,
            "created_at": c.created_at}


@bp.get("/rules")
@responds(RulesOut)
@tenant_route("read")
async def list_rules(scope: TenantScope) -> dict[str, Any]:
    """Every kind of alert with this tenant's setting (all on by default)."""
    return {"rules": [_rule(s) for s in await alerts.settings_of(scope.tenant_id)]}


@bp.put("/rules/<kind>")
@responds(RuleOut, errors=BODY_ERRORS)
@tenant_route("admin")
@validate_request(RuleIn)
async def set_rule(scope: TenantScope, kind: str, data: RuleIn) -> dict[str, Any]:
    """Turn a kind of alert on or off, set its parameters and quiet period."""
    if kind not in alerts.KINDS:
        raise NotFound("alert kind")
    s = await alerts.set_rule(scope.tenant_id, kind, enabled=data.enabled, params=data.params, quiet_s=data.quiet_s)
    await rt().audit.append(actor=scope.actor, action="alert.rule", tenant_id=scope.tenant_id, target=kind,
                            details={"enabled": s.enabled, "params": s.params, "quiet_s": s.quiet_s})
    return _rule(s)


@bp.get("/channels")
@responds(ChannelsOut)
@tenant_route("read")
async def list_channels(scope: TenantScope) -> dict[str, Any]:
    """Where this tenant's alerts go."""
    return await _channels(scope)


@bp.post("/channels")
@responds(ChannelCreated, 201, errors=BODY_ERRORS)
@tenant_route("admin")
@validate_request(ChannelIn)
async def create_channel(scope: TenantScope, data: ChannelIn) -> tuple[dict[str, Any], int]:
    """A new destination. A webhook gets a signing secret, shown once: check
    `Bulwark-Signature` (t=..., v1=HMAC-SHA256 of "t.body") on every call."""
    target = outbox.check_target(rt().config, data.kind, data.target)
    secret = "bws_" + secrets.token_urlsafe(32) if data.kind == "webhook" else ""
    channel = await AlertChannel.create(tenant_id=scope.tenant_id, kind=data.kind, name=data.name,
                                        **outbox.channel_fields(rt(), data.kind, target),
                                        secret=rt().sealer.seal("alert_channel.secret", secret) if secret else "")
    await rt().audit.append(actor=scope.actor, action="alert.channel.create", tenant_id=scope.tenant_id,
                            target=str(channel.id), details={"kind": data.kind})
    return {**_channel(channel), "secret": secret or None}, 201


@bp.delete("/channels/<uuid:channel_id>")
@responds(ChannelsOut, errors=TENANT_ERRORS)
@tenant_route("admin")
async def delete_channel(scope: TenantScope, channel: AlertChannel) -> dict[str, Any]:
    """Stop sending there (messages already queued for it are dropped at their next try)."""
    await channel.delete()
    await rt().audit.append(actor=scope.actor, action="alert.channel.delete", tenant_id=scope.tenant_id,
                            target=str(channel.id))
    return await _channels(scope)


@bp.get("/incidents")
@responds(IncidentsOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(IncidentQuery)
async def list_incidents(scope: TenantScope, query_args: IncidentQuery) -> dict[str, Any]:
    """The alert history, newest first."""
    return {"incidents": [alerts.incident_json(i) for i in await _newest(scope, Incident, "opened_at", query_args)]}


@bp.get("/outbox")
@responds(MessagesOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(OutboxQuery)
async def list_outbox(scope: TenantScope, query_args: OutboxQuery) -> dict[str, Any]:
    """Messages sent, waiting, or dead (given up on after every retry), newest first."""
    return {"messages": [outbox.message_json(m) for m in await _newest(scope, OutboxMessage, "created_at", query_args)]}


@bp.post("/outbox/<uuid:message_id>/replay")
@responds(MessageOut, errors=INPUT_ERRORS)
@tenant_route("admin")
async def replay(scope: TenantScope, message: OutboxMessage) -> dict[str, Any]:
    """Try a dead message again, from its first attempt."""
    m = await outbox.replay(message)
    await rt().audit.append(actor=scope.actor, action="alert.replay", tenant_id=scope.tenant_id, target=str(m.id))
    return outbox.message_json(m)
