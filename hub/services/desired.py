"""An agent's desired state, and waiting until it changes.

The document (see docs/agent-protocol.md):
    {"agent_id", "etag", "mode": "enforce"|"monitor"|"deactivate"|"none",
     "deployment": {"id", "digest"} | null, "plan": <Plan JSON> (only when the agent's
     applied digest differs), "lists": [per-list "current" | "delta" | "snapshot"],
     "signature": <Ed25519 over agent, deployment, digest, mode> (enforce and monitor)}

`etag` fingerprints everything that would change the document, so an agent that sends
back the etag it holds waits until there is something new.

A change wakes every waiting agent of a tenant in the same moment. What they share —
the tenant row, its lists, the list updates they need, the deployments they point at —
is read once for all of them as a `TenantView` (through a `Coalescer`, so it is never
older than the change that woke them); each agent's document is then built from its
own row and the view without touching the database (`document`, pure).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bulwark import plan_signature
from hub.errors import Unauthenticated
from hub.models import Deployment, IpList, Tenant
from hub.runtime import Runtime
from hub.services import captures, lists
from hub.services.agents import AgentRow, LiveAgents, agent_channel, tenant_channel
from hub.services.coalesce import Coalescer
from hub.services.notify import ALL
from hub.services.plan_signing import PlanSigner

DEPLOYMENTS_CACHED = 256


@dataclasses.dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """What a document says of a deployment; deployments are immutable, so this is cached."""

    id: uuid.UUID
    digest: str
    monitor: bool
    plan: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Ask:
    """What one waiting agent needs from its tenant's view."""

    deployment_id: uuid.UUID | None
    known_lists: dict[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class TenantView:
    suspended: bool
    lists: tuple[IpList, ...]
    deployments: dict[uuid.UUID, DeploymentFacts]
    # (list id, revision the agent holds or None) -> that agent's entry in "lists"
    updates: dict[tuple[uuid.UUID, int | None], dict[str, Any]]
    # (mode, deployment id) -> etag: the same for every agent woken with this view
    etags: dict[tuple[str, uuid.UUID | None], str] = dataclasses.field(default_factory=dict)

    def etag(self, mode: str, deployment: DeploymentFacts | None) -> str:
        key = (mode, deployment.id if deployment else None)
        etag = self.etags.get(key)
        if etag is None:
            etag = self.etags[key] = etag_of(mode, deployment, self.lists)
        return etag


def mode_of(row: AgentRow, view: TenantView, deployment: DeploymentFacts | None) -> str:
    if not row.enabled or view.suspended or row.revoked_at is not None:
        return "deactivate"
    if deployment is None:
        return "none"
    return "monitor" if deployment.monitor else "enforce"


def etag_of(mode: str, deployment: DeploymentFacts | None, ip_lists: tuple[IpList, ...]) -> str:
    basis = json.dumps([mode, str(deployment.id) if deployment else None,
                        [(str(x.id), x.revision) for x in ip_lists]])
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def document(row: AgentRow, view: TenantView, applied_digest: str | None,
             known_lists: dict[str, int], signer: PlanSigner) -> dict[str, Any]:
    """The agent's desired-state document, from its row and its tenant's view. Pure
    (signatures are deterministic)."""
    deployment = view.deployments.get(row.deployment_id) if row.deployment_id else None
    mode = mode_of(row, view, deployment)
    doc: dict[str, Any] = {
        "agent_id": str(row.id),
        "etag": view.etag(mode, deployment),
        "mode": mode,
        "deployment": None if deployment is None else {"id": str(deployment.id), "digest": deployment.digest},
        "lists": [view.updates[(x.id, known_lists.get(str(x.id)))] for x in view.lists],
    }
    if deployment is not None and mode != "deactivate" and applied_digest != deployment.digest:
        doc["plan"] = deployment.plan
    if deployment is not None and mode in plan_signature.MODES:
        doc["signature"] = signer.sign(str(row.id), str(deployment.id), deployment.digest, mode)
    return doc


class DesiredStates:
    """Builds documents for one hub process; holds the per-tenant view loader and the
    deployment cache."""

    def __init__(self, signer: PlanSigner) -> None:
        self.signer = signer
        self.views: Coalescer[uuid.UUID, Ask, TenantView] = Coalescer(self._load_view)
        self._deployments: collections.OrderedDict[uuid.UUID, DeploymentFacts] = collections.OrderedDict()

    async def view(self, row: AgentRow, known_lists: dict[str, int]) -> TenantView:
        return await self.views.get(row.tenant_id, Ask(row.deployment_id, known_lists))

    async def _load_view(self, tenant_id: uuid.UUID, asks: list[Ask]) -> TenantView:
        # A tenant that is gone is treated as suspended: its agents deactivate.
        suspended = await Tenant.filter(id=tenant_id).values_list("suspended", flat=True)
        ip_lists = tuple(await IpList.filter(tenant_id=tenant_id).order_by("name"))
        updates: dict[tuple[uuid.UUID, int | None], dict[str, Any]] = {}
        for ip_list in ip_lists:
            for since in {ask.known_lists.get(str(ip_list.id)) for ask in asks}:
                updates[(ip_list.id, since)] = await lists.agent_update(ip_list, since)
        wanted = {ask.deployment_id for ask in asks if ask.deployment_id is not None}
        return TenantView(suspended=suspended != [False], lists=ip_lists,
                          deployments=await self._deployment_facts(wanted), updates=updates)

    async def _deployment_facts(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, DeploymentFacts]:
        missing = ids - self._deployments.keys()
        if missing:
            for d in await Deployment.filter(id__in=list(missing)).only("id", "plan_digest", "monitor", "plan_json"):
                self._deployments[d.id] = DeploymentFacts(d.id, d.plan_digest, d.monitor, json.loads(d.plan_json))
        out = {}
        for deployment_id in ids & self._deployments.keys():
            self._deployments.move_to_end(deployment_id)
            out[deployment_id] = self._deployments[deployment_id]
        while len(self._deployments) > DEPLOYMENTS_CACHED:
            self._deployments.popitem(last=False)
        return out


def held_after(doc: dict[str, Any], applied_digest: str | None) -> tuple[dict[str, int], str | None]:
    """What an agent holds once it has taken in `doc`: each list at the revision the
    document gives, and the Plan it was sent (else the one it had). Pure."""
    lists_held = {item["id"]: item["revision"] for item in doc["lists"]}
    return lists_held, doc["deployment"]["digest"] if "plan" in doc else applied_digest


async def changes(rt: Runtime, states: DesiredStates, live: LiveAgents, agent: AgentRow,
                  etag: str | None, applied_digest: str | None, known_lists: dict[str, int],
                  wait_s: float) -> AsyncIterator[dict[str, Any]]:
    """Each desired state that differs from the one before: first from `etag`, then from
    the last one yielded, whose lists and Plan the agent is taken to hold (`held_after`).
    Ends after `wait_s` seconds, or at once when a newer request of the same agent takes
    its turn (one request per agent). Close it (`contextlib.aclosing`) when done early.

    Subscribes before reading, so a change between a read and the wait is not lost; one
    subscription for the whole stream, so a streaming agent woken by a list change costs
    no request, no authentication and no row read.
    Raises Unauthenticated if the agent is revoked or its credential rotated meanwhile.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    own = agent_channel(agent.id)
    async with rt.notifier.subscribe([own, tenant_channel(agent.tenant_id)]) as sub:
        with live.turn(agent.id, sub):
            # The row authenticate read holds if nothing was published since that read
            # began (a re-poll right after an answer, the common case): one row read.
            row = agent if live.still_current(agent) else None
            fresh = row is not None
            capture = None
            while True:
                # Every change to the agent's row or its capture request publishes on its
                # own channel after the commit, so after a tenant-wide wake what was read
                # of them since subscribing still holds: 10,000 agents woken by a list
                # change cost no row query and no file read each.
                if row is None or own in sub.fired or ALL in sub.fired:
                    row = await live.row(agent.id)
                    fresh = row is not None
                if fresh:
                    capture = captures.pending(rt, row.tenant_id, row.id)
                    fresh = False
                if row is None or row.revoked_at is not None or row.credential_hash != agent.credential_hash:
                    raise Unauthenticated("this agent's credential is no longer valid")
                view = await states.view(row, known_lists)
                doc = captures.with_capture(document(row, view, applied_digest, known_lists, states.signer), capture)
                if etag is None or doc["etag"] != etag:
                    yield doc
                    etag = doc["etag"]
                    known_lists, applied_digest = held_after(doc, applied_digest)
                    live.seen(agent.id)
                with live.waiting(agent.id):
                    changed = await sub.wait(max(0.0, deadline - loop.time()))
                if not changed or sub.superseded:
                    return


async def first(docs: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The long-poll's answer: the first of `changes`, or None when it ends without one."""
    async with contextlib.aclosing(docs):
        async for doc in docs:
            return doc
    return None
