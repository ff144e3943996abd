"""Metrics in the public API: query by agent, rule and time range; top sources; SSE."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from quart import Blueprint, Response
from quart_schema import tag_blueprint, validate_querystring

from hub.api_schemas.common import INPUT_ERRORS, raw_response, responds
from hub.api_schemas.metrics import MetricsQuery, PointsOut, RangeQuery, StreamQuery, TopSourcesOut
from hub.models import Agent
from hub.services import metrics
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("metrics", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/metrics")
tag_blueprint(bp, ["metrics"])


def _range(q: RangeQuery) -> tuple[int, int]:
    end = q.end if q.end is not None else int(time.time()) + 1
    return (q.start if q.start is not None else max(0, end - 3600)), end


@bp.get("")
@responds(PointsOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(MetricsQuery)
async def query(scope: TenantScope, query_args: MetricsQuery) -> dict[str, Any]:
    """Per-rule packet and byte counts in [start, end), raw or rolled up."""
    if query_args.agent_id is not None:
        await scope.get(Agent, query_args.agent_id, "agent")
    start, end = _range(query_args)
    points = await metrics.query(scope.tenant_id, agent_id=query_args.agent_id, rule=query_args.rule,
                                 start=start, end=end, resolution=query_args.resolution,
                                 rollup_s=rt().config.metrics_rollup_s)
    return {"points": points, "start": start, "end": end}


@bp.get("/top-sources")
@responds(TopSourcesOut, errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(RangeQuery)
async def top_sources(scope: TenantScope, query_args: RangeQuery) -> dict[str, Any]:
    """The source addresses dropped most in [start, end)."""
    start, end = _range(query_args)
    return {"sources": await metrics.top_sources(scope.tenant_id, start, end)}


@bp.get("/stream")
@raw_response("text/event-stream", "a `rates` event (JSON data: per-rule pps and bps) each time this "
              "tenant's agents send metrics; comments keep the connection alive", errors=INPUT_ERRORS)
@tenant_route("read")
@validate_querystring(StreamQuery)
async def stream(scope: TenantScope, query_args: StreamQuery) -> Response:
    """Server-sent events of the tenant's live rates."""
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
