"""The dashboard and an agent's page: every agent's state and its traffic in the window.

The dashboard's first render reads a bounded number of queries however many agents the
tenant has: the agents, their deployments (one query), the totals per (agent, rule)
summed in SQL (rows ~ agents x counter slots, not one per stored point), the top sources.
The sparklines' starting data (`trend`) is not in the page: the page's script fetches it
(one more grouped query) beside the live stream, so a person without JavaScript, who
never sees a sparkline, never waits for it either.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from markupsafe import Markup
from quart import current_app, jsonify, render_template

from hub.clock import now_utc
from hub.models import Agent, Deployment
from hub.panel import bp, summary
from hub.panel.pages import _page
from hub.services import metrics
from hub.web import rt
from rules_dsl import traffic

DASHBOARD_WINDOW_S = 15 * 60
TOP_SOURCES = 10
DASHBOARD_BUCKET_S = 60  # the trend starts as 15 points (one query for all agents); live rates extend it


async def _desired(agent_rows: list[Agent]) -> dict[uuid.UUID, Deployment]:
    ids = {a.deployment_id for a in agent_rows if a.deployment_id}
    return {d.id: d for d in await Deployment.filter(id__in=list(ids))} if ids else {}


class _Verdicts:
    """Each deployment's verdict map (and its JSON for the page's script), parsed once per
    request however many agents run it: the Plan's JSON is the largest thing a row reads."""

    def __init__(self, desired: dict[uuid.UUID, Deployment]) -> None:
        self._desired = desired
        self._maps: dict[uuid.UUID | None, tuple[dict[str, dict[str, str]], str]] = {}

    def of(self, deployment_id: uuid.UUID | None) -> tuple[dict[str, dict[str, str]], str]:
        if deployment_id not in self._maps:
            d = self._desired.get(deployment_id) if deployment_id else None
            found = summary.verdicts(d.plan_json if d else None)
            self._maps[deployment_id] = (found, json.dumps(found))
        return self._maps[deployment_id]


def _agent_view(a: Agent, desired: Deployment | None, mine: list[dict[str, Any]], now: dt.datetime,
                verdict_map: dict[str, dict[str, str]] | None = None, with_series: bool = True) -> dict:
    """What one agent's row or page shows; `mine` are its own metric points (or sums)."""
    if verdict_map is None:
        verdict_map = summary.verdicts(desired.plan_json if desired else None)
    window = rt().config.agent_connected_window_s
    status = a.last_status or {}
    return {
        "agent": a, "online": summary.online(a.last_seen_at, window, now) and a.revoked_at is None,
        "xdp_mode": status.get("xdp_mode") or (a.inventory or {}).get("xdp_mode", "none"), "mode": status.get("mode", "none"),
        "healthy": status.get("healthy", True), "errors": status.get("errors", []),
        "drift": status.get("drift", []),
        "desired_digest": desired.plan_digest if desired else None,
        "sync": summary.drift_state(desired.plan_digest if desired else None, a.applied_digest),
        "verdicts": verdict_map, "totals": summary.totals(mine, verdict_map),
        "series": summary.series(mine, verdict_map) if with_series else [],
    }


SYNC_TEMPLATES = "bulwark_sync_templates"


def _render_sync(name: str, **context: Any) -> Markup:
    """`name` rendered by a synchronous overlay of the app's Jinja environment (same loader,
    filters and globals, its own cache of compiled templates, made once per app): the
    async environment awaits every expression and macro call, which for a hundred agent
    rows was most of the dashboard's time. Only for templates that call nothing async."""
    env = current_app.extensions.get(SYNC_TEMPLATES)
    if env is None:
        env = current_app.extensions[SYNC_TEMPLATES] = current_app.jinja_env.overlay(enable_async=False,
                                                                                   cache_size=50)
    return Markup(env.get_template(name).render(**context))


def _by_agent(points: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for point in points:  # one pass, not one scan of every point per agent
        out.setdefault(point["agent_id"], []).append(point)
    return out


@bp.get("/t/<uuid:tenant_id>/")
async def dashboard(tenant_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    rows = await scope.query(Agent).order_by("enrolled_at")
    desired = await _desired(rows)
    verdicts = _Verdicts(desired)
    end = int(time.time()) + 1
    sums = _by_agent(await metrics.per_rule(scope.tenant_id, end - DASHBOARD_WINDOW_S, end))
    now = now_utc()
    views = []
    for a in rows:
        verdict_map, verdict_json = verdicts.of(a.deployment_id)
        view = _agent_view(a, desired.get(a.deployment_id), sums.get(str(a.id), []), now, verdict_map,
                           with_series=False)
        view["verdicts_json"] = verdict_json
        views.append(view)
    top = await metrics.top_sources(scope.tenant_id, end - DASHBOARD_WINDOW_S, end, limit=TOP_SOURCES)
    rows_html = _render_sync("panel/_agent_rows.html", views=views, tenant=ctx["tenant"], human=summary.human)
    return await render_template("panel/dashboard.html", **ctx, views=views, human=summary.human, top=top,
                                 rows_html=rows_html, online=sum(v["online"] for v in views),
                                 window_min=DASHBOARD_WINDOW_S // 60)


@bp.get("/t/<uuid:tenant_id>/trend")
async def dashboard_trend(tenant_id: uuid.UUID):  # noqa: ANN201 (a JSON response)
    """{"agents": {agent id: [[ts, passed pps, dropped pps], ...]}}: every agent's sparkline
    start over the dashboard's window, in `DASHBOARD_BUCKET_S` buckets summed in SQL."""
    scope, _ = await _page(tenant_id)
    rows = await scope.query(Agent).only("id", "deployment_id")
    verdicts = _Verdicts(await _desired(rows))
    end = int(time.time()) + 1
    points = _by_agent(await metrics.bucketed(scope.tenant_id, end - DASHBOARD_WINDOW_S, end, DASHBOARD_BUCKET_S))
    return jsonify({"agents": {str(a.id): summary.series(points.get(str(a.id), []), verdicts.of(a.deployment_id)[0])
                               for a in rows}, "bucket_s": DASHBOARD_BUCKET_S})


@bp.get("/t/<uuid:tenant_id>/agents/<uuid:agent_id>")
async def agent(tenant_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    scope, ctx = await _page(tenant_id)
    a = await scope.get(Agent, agent_id, "agent")
    desired = (await _desired([a])).get(a.deployment_id)
    end = int(time.time()) + 1
    points = await metrics.query(scope.tenant_id, agent_id=a.id, rule=None, start=end - DASHBOARD_WINDOW_S,
                                 end=end, resolution="raw", rollup_s=rt().config.metrics_rollup_s)
    view = _agent_view(a, desired, points, now_utc())
    drops = traffic.grouped(await metrics.traffic(scope.tenant_id, end - DASHBOARD_WINDOW_S, end, agent_id=a.id))
    return await render_template("panel/agent.html", **ctx, v=view, human=summary.human, json=json, drops=drops,
                                 can_deploy="deploy" in scope.permissions, window_min=DASHBOARD_WINDOW_S // 60,
                                 can_write="write" in scope.permissions, can_admin="admin" in scope.permissions)
