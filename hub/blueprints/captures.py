"""Agent captures in the public API: ask an agent for one, list what is kept, download."""
from __future__ import annotations

from typing import Any

from pydantic import Field
from quart import Blueprint, Response
from quart_schema import tag_blueprint, validate_request

from hub.api_schemas.common import BODY_ERRORS, Strict, raw_response, responds
from hub.models import Agent
from hub.services import captures
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route
from rules_dsl.capture import REQUEST_BOUNDS

bp = Blueprint("captures", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/captures")
tag_blueprint(bp, ["captures"])


def _limit(name: str, default: int) -> Any:
    """A capture limit with the protocol's bounds (rules_dsl.capture.REQUEST_BOUNDS)."""
    least, most = REQUEST_BOUNDS[name]
    return Field(default=default, ge=least, le=most)


class CaptureIn(Strict):
    agent_id: str = Field(max_length=64)
    max_frames: int = _limit("max_frames", 10_000)
    max_seconds: int = _limit("max_seconds", 30)
    max_bytes: int = _limit("max_bytes", 8 * 1024 * 1024)
    sample_every: int = _limit("sample_every", 1)


class CaptureRequested(Strict):
    id: str
    max_frames: int
    max_seconds: int
    max_bytes: int
    sample_every: int
    requested_at: int


class CaptureOut(Strict):
    id: str
    agent_id: str
    bytes: int
    at: int


class CapturesOut(Strict):
    captures: list[CaptureOut]


@bp.post("")
@responds(CaptureRequested, 202, errors=(*BODY_ERRORS, 404))
@tenant_route("write")
@validate_request(CaptureIn)
async def ask(scope: TenantScope, data: CaptureIn) -> tuple[dict[str, Any], int]:
    """Ask an agent for a bounded, sampled capture; it reaches the agent in its desired
    state (a line of its streamed answer, or a long-poll's answer)."""
    import uuid

    try:
        agent_id = uuid.UUID(data.agent_id)
    except ValueError:
        from hub.errors import NotFound

        raise NotFound("agent") from None
    agent = await scope.get(Agent, agent_id, "agent")
    limits = data.model_dump(exclude={"agent_id"})
    return await captures.request(rt(), scope.tenant_id, agent.id, limits), 202


@bp.get("")
@responds(CapturesOut)
@tenant_route("read")
async def index(scope: TenantScope) -> dict[str, Any]:
    """The captures kept for this tenant (within the retention), newest first."""
    return {"captures": captures.listing(rt(), scope.tenant_id)}


@bp.get("/<capture_id>")
@raw_response("application/vnd.tcpdump.pcap", "the capture as the agent recorded it")
@tenant_route("read")
async def download(scope: TenantScope, capture_id: str) -> Response:
    """One capture's pcap."""
    return Response(captures.read(rt(), scope.tenant_id, capture_id[:64]), mimetype="application/vnd.tcpdump.pcap")
