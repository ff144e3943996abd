"""The agent protocol (docs/agent-protocol.md): enrol, wait for desired state, report
status, send metrics. Authenticated by the agent credential; bodies are size-limited
(max_body_bytes, before parsing) and schema-checked; a bad request changes nothing.

Enrolment is a Quart route; the hot routes (desired, status, metrics) are `HOT_ROUTES`,
served by `hub.agent_asgi` without Quart's per-request machinery."""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from quart import Blueprint, Quart, Response, current_app, jsonify
from quart_schema import hide, validate_request

from hub.api_schemas.common import MAX_INT, Closed, Strict
from hub.models import Agent
from hub.runtime import Runtime
from hub.services import agents, alerts, deployments, desired, metrics
from hub.services.plan_signing import PlanSigner
from hub.web import client_address, rt
from rules_dsl import addresses, traffic

log = logging.getLogger("bulwark.hub.agents")

bp = Blueprint("agent_protocol", __name__, url_prefix="/agent/v1")

DIGEST = r"^[0-9a-f]{64}$"


class Interface(Strict):
    name: str = Field(max_length=64)
    addresses: list[str] = Field(default_factory=list, max_length=64)
    mac: str | None = Field(default=None, max_length=32)


class Inventory(Strict):
    hostname: str = Field(default="", max_length=255)
    interfaces: list[Interface] = Field(default_factory=list, max_length=256)
    kernel: str = Field(default="", max_length=200)
    xdp_mode: Literal["native", "generic", "none"] = "none"
    agent_version: str = Field(default="", max_length=64)
    os: str = Field(default="", max_length=200)
    # /etc/machine-id: a clone of an enrolled machine shares it (see services.agents.enroll)
    machine_id: str = Field(default="", pattern=r"^([0-9a-f]{32})?$")


class EnrollIn(Strict):
    join_token: str = Field(max_length=200)
    inventory: Inventory
    force: bool = False  # enrol even when an agent of this tenant has the same machine-id


class DesiredIn(Closed):
    etag: str | None = Field(default=None, max_length=64)
    applied_digest: str | None = Field(default=None, pattern=DIGEST)
    lists: dict[str, int] = Field(default_factory=dict, max_length=1000)
    wait_s: float = Field(default=30, ge=0, le=300)
    # One answer held open for `wait_s`, a document a line (application/x-ndjson) each time
    # the state changes, instead of one answer a change (docs/agent-protocol.md, "Streaming").
    stream: bool = False


class StatusIn(Closed):
    applied_digest: str | None = Field(default=None, pattern=DIGEST)
    failed_digest: str | None = Field(default=None, pattern=DIGEST)
    healthy: bool = True
    mode: Literal["enforce", "monitor", "deactivated", "none"] = "none"
    list_revisions: dict[str, int] = Field(default_factory=dict, max_length=1000)
    errors: list[str] = Field(default_factory=list, max_length=100)
    drift: list[str] = Field(default_factory=list, max_length=100)
    xdp_mode: Literal["native", "generic", "none"] | None = None  # as attached now; None: an older agent
    inventory: Inventory | None = None


# Counters are stored as signed 64-bit integers: a larger value is the caller's error
# (400), not the database driver's overflow (a 500 that failed the whole group commit).
class Point(Closed):
    ts: int = Field(ge=0, le=MAX_INT)
    rule: str = Field(min_length=1, max_length=200)
    packets: int = Field(ge=0, le=MAX_INT)
    bytes: int = Field(ge=0, le=MAX_INT)
    interval_s: int = Field(default=1, ge=1, le=3600)


class Source(Closed):
    ts: int = Field(ge=0, le=MAX_INT)
    source: str = Field(max_length=64)
    packets: int = Field(ge=0, le=MAX_INT)

    @field_validator("source")
    @classmethod
    def _is_address(cls, v: str) -> str:
        return canonical_network(v)


@functools.lru_cache(maxsize=65536)
def canonical_network(text: str) -> str:
    """A source in the canonical form (rules_dsl.addresses: `203.0.113.9`, a bare host, as
    the lists and the API write it). Cached: the same sources top every batch for a while.
    Raises AddressError (a ValueError: the schema's error)."""
    return addresses.canonical(text)


class Aggregate(Closed):
    """A drop aggregate (rules_dsl.traffic, the one definition of its kinds and bounds)."""
    ts: int = Field(ge=0, le=MAX_INT)
    kind: Literal[traffic.KINDS]  # type: ignore[valid-type]
    proto: int = Field(ge=0, le=255, strict=True)  # strict: a bool is not a protocol
    value: int = Field(ge=0, le=65535, strict=True)
    packets: int = Field(ge=0, le=MAX_INT)

    @model_validator(mode="after")
    def _is_a_row(self) -> Aggregate:
        traffic.check(self.kind, self.proto, self.value)  # a ValueError: the schema's 400
        return self


class MetricsIn(Closed):
    points: list[Point] = Field(default_factory=list, max_length=100000)
    top_sources: list[Source] = Field(default_factory=list, max_length=10000)
    traffic: list[Aggregate] = Field(default_factory=list, max_length=10000)


LAST_SEEN_SAVE_S = 15.0  # how stale Agent.last_seen_at may be


@bp.record_once
def _set_up(state) -> None:  # noqa: ANN001 (Quart's BlueprintSetupState)
    config = state.app.extensions["bulwark"].config
    state.app.extensions["bulwark_agents"] = agents.LiveAgents(config.agent_connected_window_s,
                                                               state.app.extensions["bulwark"].notifier)
    state.app.extensions["bulwark_desired"] = desired.DesiredStates(PlanSigner(config))
    state.app.extensions["bulwark_metrics"] = metrics.MetricsWriter(state.app.extensions["bulwark"])


@bp.while_app_serving
async def _save_last_seen() -> AsyncIterator[None]:
    live = live_agents()

    async def loop() -> None:
        while True:
            await asyncio.sleep(LAST_SEEN_SAVE_S)
            try:
                await live.save_last_seen()
            except Exception:  # retried next period
                log.exception("saving agents' last_seen_at failed")

    task = asyncio.create_task(loop(), name="bulwark:last-seen")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await live.save_last_seen()


def live_agents() -> agents.LiveAgents:
    return current_app.extensions["bulwark_agents"]


@bp.post("/enroll")
@hide
@validate_request(EnrollIn)
async def enroll(data: EnrollIn) -> tuple[Response, int]:
    agent, credential = await agents.enroll(rt(), data.join_token, data.inventory.model_dump(), client_address(),
                                            force=data.force)
    signer = current_app.extensions["bulwark_desired"].signer
    return jsonify({"agent_id": str(agent.id), "credential": credential, "plan_public_key": signer.public_key}), 201


@bp.post("/captures/<capture_id>")
@hide
async def capture_upload(capture_id: str) -> Response:
    """The pcap of the capture the hub asked for (its id from the desired state), as the
    body; capped at `capture_max_bytes`."""
    from quart import request

    from hub.agent_asgi import bearer_token
    from hub.blueprints.replay import read_capture_body
    from hub.services import captures

    agent = await live_agents().authenticate(bearer_token(request.headers.get("Authorization", "")))
    data = await read_capture_body(rt().config.capture_max_bytes)
    return jsonify(await captures.store(rt(), agent.tenant_id, agent.id, capture_id[:64], data))


capture_upload.bulwark_bulk_body = True  # type: ignore[attr-defined]


# The hot routes: served by `hub.agent_asgi` in front of Quart (no Quart route), which
# authenticates the agent and validates the body before calling these.


@dataclasses.dataclass(frozen=True, slots=True)
class Served:
    """What the hot routes' handlers use; one per process (made at registration)."""

    rt: Runtime
    live: agents.LiveAgents
    desired: desired.DesiredStates
    metrics: metrics.MetricsWriter

    @classmethod
    def of(cls, app: Quart) -> Served:
        ext = app.extensions
        return cls(ext["bulwark"], ext["bulwark_agents"], ext["bulwark_desired"], ext["bulwark_metrics"])


async def desired_state(hub: Served, agent: agents.AgentRow, data: DesiredIn) -> dict[str, Any] | None:
    """Long-poll: answers at once when the state differs from `etag`, else waits (None: 204)."""
    return await desired.first(desired_stream(hub, agent, data))


def desired_stream(hub: Served, agent: agents.AgentRow, data: DesiredIn) -> AsyncIterator[dict[str, Any]]:
    """The streamed form: every change, a document each, until `wait_s` has passed."""
    wait_s = min(data.wait_s, hub.rt.config.long_poll_max_s)
    return desired.changes(hub.rt, hub.desired, hub.live, agent, data.etag, data.applied_digest, data.lists, wait_s)


async def status(hub: Served, agent: agents.AgentRow, data: StatusIn) -> dict[str, Any]:
    fields = {"applied_digest": data.applied_digest, "list_revisions": data.list_revisions,
              "last_status": {"healthy": data.healthy, "mode": data.mode, "errors": data.errors,
                              "drift": data.drift, "failed_digest": data.failed_digest,
                              "xdp_mode": data.xdp_mode}}
    if data.inventory is not None:
        fields["inventory"] = data.inventory.model_dump()
        fields["hostname"] = data.inventory.hostname
    await Agent.filter(id=agent.id).update(**fields)
    full = await Agent.get(id=agent.id)  # rollouts read the deployment pointer it has now
    await deployments.on_status(hub.rt, full, data.applied_digest, data.failed_digest, data.healthy,
                                "; ".join(data.errors))
    await alerts.on_agent_status(hub.rt, full, failed_digest=data.failed_digest, errors=data.errors,
                                 drift=data.drift, xdp_mode=data.xdp_mode or (data.inventory.xdp_mode if data.inventory else None))
    return {"ok": True}


async def ingest(hub: Served, agent: agents.AgentRow, data: MetricsIn) -> dict[str, Any]:
    n = await hub.metrics.ingest(metrics.Batch(
        agent.tenant_id, agent.id, [p.model_dump() for p in data.points], [s.model_dump() for s in data.top_sources],
        [g.model_dump() for g in data.traffic]))
    return {"accepted": n}


@dataclasses.dataclass(frozen=True, slots=True)
class HotRoute:
    endpoint: str  # the name in the hub's request metrics, as when Quart served it
    model: type[Closed]  # the body's NUL check is read_json's
    handler: Callable[[Served, agents.AgentRow, Any], Awaitable[dict[str, Any] | None]]
    long_poll: bool = False  # cancelled when the agent hangs up
    # with a body that asks for it (`stream`), the documents this gives, a line each
    streamed: Callable[[Served, agents.AgentRow, Any], AsyncIterator[dict[str, Any]]] | None = None

    def streams(self, data: Any) -> bool:
        return self.streamed is not None and getattr(data, "stream", False)


HOT_ROUTES: dict[str, HotRoute] = {
    "/agent/v1/desired": HotRoute("agent_protocol.desired_state", DesiredIn, desired_state, long_poll=True,
                                  streamed=desired_stream),
    "/agent/v1/status": HotRoute("agent_protocol.status", StatusIn, status),
    "/agent/v1/metrics": HotRoute("agent_protocol.ingest", MetricsIn, ingest),
}
