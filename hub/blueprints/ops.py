"""Health, readiness and the hub's own Prometheus metrics (unauthenticated, no tenant data)."""
from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, current_app, jsonify
from quart_schema import hide
from tortoise.context import get_current_context

from hub.web import rt

log = logging.getLogger("bulwark.hub")
bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@hide
async def health() -> Response:
    """Alive: the process answers. A load balancer restarts on failure."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@hide
async def ready() -> Response:
    """Ready: the database answers. A load balancer stops routing on failure."""
    try:
        ctx = get_current_context()
        if ctx is None or "bulwark_db" not in current_app.extensions:
            raise RuntimeError("database not open")
        await ctx.db("default").execute_query("SELECT 1")
    except Exception:  # any failure means not ready; the why goes to the log, not the caller
        log.warning("not ready: the database does not answer", exc_info=True)
        response = jsonify({"status": "unavailable", "reason": "the database does not answer"})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})


@bp.get("/metrics")
@hide
async def metrics() -> Response:
    """Per process: a Prometheus server scrapes each hub process and sums."""
    runtime = rt()
    live = current_app.extensions["bulwark_agents"]
    runtime.metrics.pending_pushes.set(live.pending_pushes)
    runtime.metrics.connected_agents.set(live.connected())
    return Response(generate_latest(runtime.metrics.registry), content_type=CONTENT_TYPE_LATEST)
