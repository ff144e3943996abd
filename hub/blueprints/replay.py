"""Replay in the public API: the body is a pcap/pcapng capture, the query names the
candidate policy and, optionally, the running one to compare with (docs/dsl.md)."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import tag_blueprint, validate_querystring

from hub.api_schemas.common import BODY_ERRORS, raw_request, responds
from hub.api_schemas.replay import ReplayOut, ReplayQuery
from hub.errors import NotFound, PayloadTooLarge
from hub.models import Policy, PolicyVersion
from hub.services import captures, policies
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("replay", __name__, url_prefix="/api/v1/tenants/<uuid:tenant_id>/replay")
tag_blueprint(bp, ["replay"])


async def policy_source(scope: TenantScope, policy_id: Any, version: int | None = None) -> str:
    policy = await scope.get(Policy, policy_id, "policy")
    v = await PolicyVersion.get_or_none(policy_id=policy.id, version=version or policy.latest_version)
    if v is None:
        raise NotFound("policy version")
    return v.source


async def read_capture_body(limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.body:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"a capture may have at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@bp.post("")
@responds(ReplayOut, errors=(*BODY_ERRORS, 422))
@raw_request("application/vnd.tcpdump.pcap", "application/octet-stream",
             description="a pcap or pcapng capture (Ethernet, raw IP or Linux cooked)")
@tenant_route("read")
@validate_querystring(ReplayQuery)
async def replay(scope: TenantScope, query_args: ReplayQuery) -> dict[str, Any]:
    """Every frame through the candidate: per-rule counts, top dropped sources, and the
    frames whose verdict differs from the running policy. Nothing is saved or deployed."""
    config = rt().config
    candidate = await policy_source(scope, query_args.policy_id, query_args.version)
    running = await policy_source(scope, query_args.running_policy_id) if query_args.running_policy_id else None
    if query_args.capture_id:
        capture = captures.read(rt(), scope.tenant_id, query_args.capture_id)
    else:
        capture = await read_capture_body(config.replay_max_capture_bytes)
    return await policies.replay_bounded(config, candidate, capture, running)


replay.bulwark_bulk_body = True  # type: ignore[attr-defined]
