"""Metrics in the public API: query by agent, rule and time range; top sources; SSE."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

from pydantic import Field
from quart import Blueprint, Response, jsonify
from quart_schema import validate_querystring

from hub.blueprints.schema import Strict
from hub.models import Agent
from hub.services import metrics
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("metrics", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/metrics")


class MetricsQuery(Strict):
    agent_id: uuid.UUID | None = None
    rule: str | None = Field(default=None, max_length=200)
    start: int | None = Field(default=None, ge=0, description="unix seconds, default: an hour ago")
    end: int | None = Field(default=None, ge=0, description="unix seconds, default: now")
    resolution: str = Field(default="raw", pattern="^(raw|rollup)$")


class StreamQuery(Strict):
    max_s: float = Field(default=3600, gt=0, le=86400, description="close the stream after this long")


def _range(q: MetricsQuery) -> tuple[int, int]:
    end = q.end if q.end is not None else int(time.time()) + 1
    return (q.start if q.start is not None else end - 3600), end


@bp.get("")
@tenant_route("read")
@validate_querystring(MetricsQuery)
async def query(scope: TenantScope, query_args: MetricsQuery) -> Response:
    if query_args.agent_id is not None:
        await scope.get(Agent, query_args.agent_id, "agent")
    start, end = _range(query_args)
    points = await metrics.query(scope.tenant_id, agent_id=query_args.agent_id, rule=query_args.rule,
                                 start=start, end=end, resolution=query_args.resolution,
                                 rollup_s=rt().config.metrics_rollup_s)
    return jsonify({"points": points, "start": start, "end": end})


@bp.get("/top-sources")
@tenant_route("read")
@validate_querystring(MetricsQuery)
async def top_sources(scope: TenantScope, query_args: MetricsQuery) -> Response:
    start, end = _range(query_args)
    return jsonify({"sources": await metrics.top_sources(scope.tenant_id, start, end)})


@bp.get("/stream")
@tenant_route("read")
@validate_querystring(StreamQuery)
async def stream(scope: TenantScope, query_args: StreamQuery) -> Response:
    """Server-sent events: a `rates` event each time this tenant's agents send metrics."""
    runtime = rt()
    tenant_id = scope.tenant_id

    async def events():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query_args.max_s
        cursor = await metrics.latest_point_id(tenant_id)
        async with runtime.notifier.subscribe([metrics.metrics_channel(tenant_id)]) as sub:
            yield b": connected\n\n"
            while loop.time() < deadline:
                if not await sub.wait(min(15.0, max(0.0, deadline - loop.time()))):
                    yield b": keep-alive\n\n"
                    continue
                cursor, rates = await metrics.live_rates(tenant_id, cursor)
                if rates:
                    yield f"event: rates\ndata: {json.dumps(rates)}\n\n".encode()

    response = Response(events(), content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.timeout = None
    return response
