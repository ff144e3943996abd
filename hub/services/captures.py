"""Agent captures: the hub asks an agent for a bounded capture through its desired-state
document, the agent uploads the pcap, the hub keeps it (files under data_dir/captures,
`capture_retention_s`) for the replay page.

One pending request per agent at a time (`pending.json` beside the agent's captures): a
new request replaces an unanswered one. The request's id is folded into the document's
etag, so a waiting agent hears of it as soon as the request is made (the agent's channel
is notified). Files, not rows: the pcaps are the bulk, and a hub of several processes
shares its data_dir.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from hub.errors import Conflict, InvalidInput, NotFound
from hub.runtime import Runtime
from hub.services.agents import agent_channel
from rules_dsl.capture import REQUEST_BOUNDS


def _dir(rt: Runtime, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Path:
    return Path(rt.config.data_dir) / "captures" / str(tenant_id) / str(agent_id)


def check_limits(limits: dict[str, int], max_bytes: int) -> dict[str, int]:
    out = {}
    for name, (lo, hi) in REQUEST_BOUNDS.items():
        value = limits.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}")
        out[name] = value
    out["max_bytes"] = min(out["max_bytes"], max_bytes)
    return out


async def request(rt: Runtime, tenant_id: uuid.UUID, agent_id: uuid.UUID, limits: dict[str, int]) -> dict[str, Any]:
    wanted = {"id": str(uuid.uuid4()), **check_limits(limits, rt.config.capture_max_bytes),
              "requested_at": int(time.time())}
    d = _dir(rt, tenant_id, agent_id)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "pending.json.tmp"
    tmp.write_text(json.dumps(wanted))
    os.replace(tmp, d / "pending.json")
    await rt.notifier.publish(agent_channel(agent_id))
    return wanted


def pending(rt: Runtime, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any] | None:
    try:
        return json.loads((_dir(rt, tenant_id, agent_id) / "pending.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


async def store(rt: Runtime, tenant_id: uuid.UUID, agent_id: uuid.UUID, capture_id: str, data: bytes) -> dict[str, Any]:
    """The agent's upload for its pending request (409 for any other id). Publishes, as
    `request` does: a waiting desired-state request re-reads the request only then."""
    wanted = pending(rt, tenant_id, agent_id)
    if wanted is None or wanted["id"] != capture_id:
        raise Conflict("no capture with this id is pending for this agent")
    if not data.startswith((b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a")):
        raise InvalidInput("the body is not a pcap or pcapng capture")
    d = _dir(rt, tenant_id, agent_id)
    (d / f"{capture_id}.pcap").write_bytes(data)
    (d / "pending.json").unlink(missing_ok=True)
    await rt.notifier.publish(agent_channel(agent_id))
    return {"id": capture_id, "bytes": len(data)}


def listing(rt: Runtime, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every kept capture of the tenant, newest first; expired ones are removed here."""
    root = Path(rt.config.data_dir) / "captures" / str(tenant_id)
    cutoff = time.time() - rt.config.capture_retention_s
    out = []
    for f in root.glob("*/*.pcap"):
        st = f.stat()
        if st.st_mtime < cutoff:
            f.unlink(missing_ok=True)
            continue
        out.append({"id": f.stem, "agent_id": f.parent.name, "bytes": st.st_size, "at": int(st.st_mtime)})
    return sorted(out, key=lambda c: -c["at"])


def read(rt: Runtime, tenant_id: uuid.UUID, capture_id: str) -> bytes:
    for c in listing(rt, tenant_id):
        if c["id"] == capture_id:
            return (Path(rt.config.data_dir) / "captures" / str(tenant_id) / c["agent_id"] / f"{capture_id}.pcap"
                    ).read_bytes()
    raise NotFound("capture")


def with_capture(doc: dict[str, Any], wanted: dict[str, Any] | None) -> dict[str, Any]:
    """The desired-state document with the pending request in it, its etag changed."""
    if wanted is None:
        return doc
    import hashlib

    etag = hashlib.sha256(f"{doc['etag']}:{wanted['id']}".encode()).hexdigest()[:32]
    return {**doc, "etag": etag, "capture": {k: wanted[k] for k in ("id", *REQUEST_BOUNDS)}}
