"""Metrics in the public API: query by agent, rule and time range; top sources; SSE."""
from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import Any

from quart import Blueprint, Response
from quart_schema import tag_blueprint, validate_querystring

from hub.api_schemas.common import INPUT_ERRORS, raw_response, responds
from hub.api_schemas.metrics import (
    MetricsQuery,
    PointsOut,
    RangeQuery,
    StreamQuery,
    TopSourcesOut,
)
from hub.models import Agent
from hub.services import metrics
from hub.services.scope import TenantScope
from hub.services.slots import StreamSlots
from hub.web import access_check, rt, tenant_route

STREAM_RECHECK_S = 5.0  # a revoked token or ended session stops its streams this soon
KEEP_ALIVE_S = 15.0
STREAMS = StreamSlots()

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
    """Server-sent events of the tenant's live rates. The stream ends within
    `STREAM_RECHECK_S` of its token being revoked, its session ending or its access going;
    each caller may hold `metrics_streams_per_principal` at once (429 beyond)."""
    runtime = rt()
    tenant_id = scope.tenant_id
    still_allowed = access_check(tenant_id, "read")
    slot = STREAMS.take(scope.actor, runtime.config.metrics_streams_per_principal)

    async def events():
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + query_args.max_s
            cursor = await metrics.latest_point_id(tenant_id)
            async with runtime.notifier.subscribe([metrics.metrics_channel(tenant_id)]) as sub:
                yield b": connected\n\n"
                next_check = loop.time() + STREAM_RECHECK_S
                quiet_since = loop.time()
                while loop.time() < deadline:
                    woke = await sub.wait(max(0.0, min(next_check, deadline) - loop.time()))
                    if sub.superseded:  # the hub is stopping: the browser reconnects to one serving
                        return
                    if loop.time() >= next_check:
                        if not await still_allowed():
                            yield b"event: end\ndata: {\"reason\": \"access ended\"}\n\n"
                            return
                        next_check = loop.time() + STREAM_RECHECK_S
                    if woke:
                        cursor, rates = await metrics.live_rates(tenant_id, cursor)
                        if rates:
                            quiet_since = loop.time()
                            yield f"event: rates\ndata: {json.dumps(rates)}\n\n".encode()
                    elif loop.time() - quiet_since >= KEEP_ALIVE_S:
                        quiet_since = loop.time()
                        yield b": keep-alive\n\n"
        finally:
            slot.release()

    body = events()
    weakref.finalize(body, slot.release)  # a stream never started still gives its slot back
    response = Response(body, content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.timeout = None
    return response
