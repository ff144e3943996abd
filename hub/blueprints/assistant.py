"""The AI assistant in the public API: drafts and suggestions are returned, never saved
or deployed (hub/services/assistant.py)."""
from __future__ import annotations

import time
import uuid
from typing import Any

from quart import Blueprint
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.assistant import DraftIn, DraftOut, SuggestIn, UsageOut
from hub.api_schemas.common import BODY_ERRORS, responds
from hub.models import Agent, Policy, PolicyVersion
from hub.services import assistant, metrics
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("assistant", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/assistant")
tag_blueprint(bp, ["assistant"])

ERRORS = (*BODY_ERRORS, 404, 409, 422, 429, 503)


async def _running(scope: TenantScope, policy_id: uuid.UUID | None) -> str:
    if policy_id is None:
        return ""
    policy = await scope.get(Policy, policy_id, "policy")
    latest = await PolicyVersion.get(policy_id=policy.id, version=policy.latest_version)
    return latest.source


@bp.post("/draft")
@responds(DraftOut, errors=ERRORS)
@tenant_route("write")
@validate_request(DraftIn)
async def draft(scope: TenantScope, data: DraftIn) -> dict[str, Any]:
    """A checked draft for a request in plain words; a person saves and deploys it."""
    running = await _running(scope, data.policy_id)
    return await assistant.draft(rt().config, scope.tenant_id, data.request, running, stream=data.stream)


@bp.post("/suggest")
@responds(DraftOut, errors=ERRORS)
@tenant_route("write")
@validate_request(SuggestIn)
async def suggest(scope: TenantScope, data: SuggestIn) -> dict[str, Any]:
    """A draft from the tenant's (or one agent's) recent drops: top sources aggregated to
    prefixes unless asked, protocols, destination ports and sizes."""
    running = await _running(scope, data.policy_id)
    now = int(time.time())
    agent = await scope.get(Agent, data.agent_id, "agent") if data.agent_id is not None else None
    agent_id = agent.id if agent is not None else None
    rows = await metrics.top_sources(scope.tenant_id, now - data.window_s, now + 1, limit=200, agent_id=agent_id)
    aggregates = await metrics.traffic(scope.tenant_id, now - data.window_s, now + 1, agent_id=agent_id)
    summary = assistant.summarize(rows, aggregates, raw=data.raw_addresses)
    return await assistant.draft(rt().config, scope.tenant_id, data.request, running, context=summary)


@bp.get("/usage")
@responds(UsageOut)
@tenant_route("read")
async def usage(scope: TenantScope) -> dict[str, Any]:
    """This tenant's assistant use against its caps, and whether the assistant is on."""
    return await assistant.usage(rt().config, scope.tenant_id)
