"""Agents: join tokens, enrolment, credentials, inventory, labels, enable/disable.

Invariants:
- A join token enrols at most `max_uses` servers (each use claimed with a conditional
  UPDATE, so parallel enrolments cannot overspend it), lives at most
  `join_token_max_ttl_s`, can be revoked, and binds the agent to the token's tenant.
- Only the sha256 of an agent credential is stored; rotate replaces it at once, so
  the old credential stops working on the next request; a revoked agent is refused.
- Disabling keeps the agent's deployment pointer and makes its desired state say
  "deactivate"; enabling therefore restores the last deployment.
- The agent protocol's hot path reads agent rows through `LiveAgents`, which shares one
  query among the requests that need rows at the same moment, and writes nothing per
  request: "last seen" is kept in memory and saved in bulk.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from hub.errors import Conflict, InvalidInput, Unauthenticated
from hub.models import Agent, JoinToken, Tenant
from hub.runtime import Runtime
from hub.security import digest, make_credential, same, split_credential
from hub.services.accounts import now
from hub.services.coalesce import Coalescer
from hub.services.scope import TenantScope

JOIN_PREFIX = "bwj"
AGENT_PREFIX = "bwa"
LABEL = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,62}$")
INVENTORY_KEYS = {"hostname", "interfaces", "kernel", "xdp_mode", "agent_version", "os", "machine_id"}


def check_labels(labels: list[str]) -> list[str]:
    bad = [label for label in labels if not LABEL.match(label)]
    if bad:
        raise InvalidInput(f"bad label(s): {', '.join(bad[:5])}; use a-z, 0-9 and . _ : / -")
    return sorted(set(labels))


def agent_channel(agent_id: uuid.UUID) -> str:
    return f"agent:{agent_id}"


def tenant_channel(tenant_id: uuid.UUID) -> str:
    return f"tenant:{tenant_id}"


MAX_JOIN_USES = 1000


async def create_join_token(rt: Runtime, scope: TenantScope, ttl_s: int, labels: list[str],
                            max_uses: int = 1) -> tuple[JoinToken, str]:
    scope.require("write")
    from hub.services import billing

    await billing.require(scope.tenant_id, "new_agents")  # said now, not when the server enrols
    if not 0 < ttl_s <= rt.config.join_token_max_ttl_s:
        raise InvalidInput(f"ttl_s must be between 1 and {rt.config.join_token_max_ttl_s}")
    if not 0 < max_uses <= MAX_JOIN_USES:
        raise InvalidInput(f"max_uses must be between 1 and {MAX_JOIN_USES}")
    token_id = uuid.uuid4()
    credential, secret_hash = make_credential(JOIN_PREFIX, token_id)
    token = await JoinToken.create(id=token_id, tenant_id=scope.tenant_id, secret_hash=secret_hash,
                                   labels=check_labels(labels), expires_at=now() + dt.timedelta(seconds=ttl_s),
                                   max_uses=max_uses)
    await rt.audit.append(actor=scope.actor, action="agent.join_token", tenant_id=scope.tenant_id,
                          target=str(token.id), address=scope.address, details={"ttl_s": ttl_s, "max_uses": max_uses})
    return token, credential


def join_token_state(token: JoinToken) -> str:
    """usable | used up | expired | revoked: what the token list shows."""
    if token.revoked_at is not None:
        return "revoked"
    if token.uses >= token.max_uses:
        return "used up"
    if token.expires_at <= now():
        return "expired"
    return "usable"


def join_token_json(token: JoinToken) -> dict[str, Any]:
    return {"id": token.id, "labels": token.labels, "created_at": token.created_at, "expires_at": token.expires_at,
            "max_uses": token.max_uses, "uses": token.uses, "revoked_at": token.revoked_at,
            "state": join_token_state(token)}


async def revoke_join_token(rt: Runtime, scope: TenantScope, token: JoinToken) -> JoinToken:
    """No more enrolments with it; the agents it enrolled stay."""
    scope.require("write")
    if token.revoked_at is None:
        token.revoked_at = now()
        await token.save(update_fields=["revoked_at"])
        await rt.audit.append(actor=scope.actor, action="agent.join_token.revoke", tenant_id=scope.tenant_id,
                              target=str(token.id), address=scope.address)
    return token


def clean_inventory(inventory: dict[str, Any]) -> dict[str, Any]:
    unknown = set(inventory) - INVENTORY_KEYS
    if unknown:
        raise InvalidInput(f"unknown inventory field(s): {', '.join(sorted(unknown))}")
    xdp = inventory.get("xdp_mode")
    if xdp is not None and xdp not in {"native", "generic", "none"}:
        raise InvalidInput("xdp_mode must be native, generic or none")
    return inventory


async def machine_clash(tenant_id: uuid.UUID, machine_id: str) -> Agent | None:
    """A live agent of the tenant enrolled from a machine with this /etc/machine-id: the
    machine was cloned (or is enrolling twice), which would make two agents fight over one
    identity."""
    if not machine_id:
        return None
    for agent in await Agent.filter(tenant_id=tenant_id, revoked_at__isnull=True).only("id", "hostname", "inventory"):
        if (agent.inventory or {}).get("machine_id") == machine_id:
            return agent
    return None


async def enroll(rt: Runtime, join_credential: str, inventory: dict[str, Any], address: str, *,
                 force: bool = False) -> tuple[Agent, str]:
    """Claim a join token and create the agent. Raises Unauthenticated for any bad token
    (unknown, used, expired) without saying which; Conflict (before the token is used) when
    an agent of the tenant has the same machine-id, unless `force`."""
    parts = split_credential(JOIN_PREFIX, join_credential)
    if parts is None:
        raise Unauthenticated("bad join token")
    token = await JoinToken.get_or_none(id=parts[0])
    if token is None or not same(token.secret_hash, digest(parts[1])) or token.expires_at <= now():
        raise Unauthenticated("bad join token")
    from hub.services import billing

    await billing.require(token.tenant_id, "new_agents")
    inventory = clean_inventory(inventory)
    clash = None if force else await machine_clash(token.tenant_id, inventory.get("machine_id", ""))
    if clash is not None:
        raise Conflict(f"agent {clash.id} ({clash.hostname or 'no hostname'}) already has this machine-id: "
                       "a cloned machine? give it a new /etc/machine-id, or enrol with --force")
    agent_id = uuid.uuid4()
    if not await _claim_use(token, agent_id):
        raise Unauthenticated("bad join token")
    credential, credential_hash = make_credential(AGENT_PREFIX, agent_id)
    agent = await Agent.create(
        id=agent_id, tenant_id=token.tenant_id, credential_hash=credential_hash,
        hostname=str(inventory.get("hostname", ""))[:255], labels=token.labels, inventory=inventory,
        last_seen_at=now(),
    )
    await billing.agents_changed(rt, agent.tenant_id)
    await rt.audit.append(actor=f"agent:{agent.id}", action="agent.enroll", tenant_id=agent.tenant_id,
                          target=str(agent.id), address=address, details={"hostname": agent.hostname})
    return agent, credential


async def _claim_use(token: JoinToken | None, agent_id: uuid.UUID, tries: int = 50) -> bool:
    """Take one use: compare and set on `uses` (alike on SQLite and PostgreSQL); when a
    parallel enrolment took that use first, re-read and try the next one."""
    for _ in range(tries):
        if token is None or token.revoked_at is not None or token.uses >= token.max_uses:
            return False
        if await JoinToken.filter(id=token.id, uses=token.uses, revoked_at__isnull=True).update(
                uses=token.uses + 1, used_at=now(), used_by=agent_id):
            return True
        token = await JoinToken.get_or_none(id=token.id)
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class AgentRow:
    """The columns the agent protocol needs on every request."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    credential_hash: str
    enabled: bool
    revoked_at: dt.datetime | None
    deployment_id: uuid.UUID | None


ROW_FIELDS = tuple(f.name for f in dataclasses.fields(AgentRow))
ROWS_PER_QUERY = 500  # SQLite binds at most a few thousand parameters per statement


def verify_agent(row: AgentRow | None, secret: str) -> AgentRow:
    """The row, if `secret` is its current credential. Raises Unauthenticated."""
    if row is None or not same(row.credential_hash, digest(secret)):
        raise Unauthenticated("bad agent credential")
    if row.revoked_at is not None:
        raise Unauthenticated("this agent was revoked")
    return row


class LiveAgents:
    """What one hub process knows about agents right now.

    `row(id)` reads agent rows through a `Coalescer` (every request woken by one change
    shares one query); `still_current` lets a long-poll keep the row `authenticate` read
    when no wake was delivered since (an agent's re-poll then reads its row once); `seen`
    and `waiting` feed the connected-agents and pending-pushes gauges; `save_last_seen` writes "last seen" in bulk, so no request writes.
    """

    def __init__(self, connected_window_s: float, notifier: Any = None) -> None:
        self.connected_window_s = connected_window_s
        self._notifier = notifier  # its `delivered` count dates the rows authenticate read
        # agent id -> (the row its last authentication read, wakes delivered before that read
        # was asked for; a coalesced read starts after every ask it serves)
        self._read_at: dict[uuid.UUID, tuple[AgentRow, int]] = {}
        self.rows: Coalescer[None, uuid.UUID, dict[uuid.UUID, AgentRow]] = Coalescer(self._load_rows)
        self._seen: dict[uuid.UUID, float] = {}  # agent id -> unix time of its last request
        self._unsaved: set[uuid.UUID] = set()
        self._waiting: dict[uuid.UUID, int] = {}  # agent id -> its requests waiting now
        self._polls: dict[uuid.UUID, Any] = {}  # agent id -> the subscription of its current long-poll

    @staticmethod
    async def _load_rows(_: None, ids: list[uuid.UUID]) -> dict[uuid.UUID, AgentRow]:
        wanted = list(dict.fromkeys(ids))
        out: dict[uuid.UUID, AgentRow] = {}
        for i in range(0, len(wanted), ROWS_PER_QUERY):
            for values in await Agent.filter(id__in=wanted[i:i + ROWS_PER_QUERY]).values_list(*ROW_FIELDS):
                row = AgentRow(*values)
                out[row.id] = row
        return out

    async def row(self, agent_id: uuid.UUID) -> AgentRow | None:
        """The agent's row as read after this call began (None if there is none)."""
        return (await self.rows.get(None, agent_id)).get(agent_id)

    async def authenticate(self, credential: str) -> AgentRow:
        """The calling agent. Raises Unauthenticated for a bad, rotated or revoked credential."""
        parts = split_credential(AGENT_PREFIX, credential)
        if parts is None:
            raise Unauthenticated("bad agent credential")
        delivered = self._delivered()
        row = verify_agent(await self.row(parts[0]), parts[1])
        if delivered is not None:
            self._read_at[row.id] = (row, delivered)
        self.seen(row.id)
        return row

    def _delivered(self) -> int | None:
        return None if self._notifier is None else self._notifier.delivered

    def still_current(self, row: AgentRow) -> bool:
        """True if `row`, as `authenticate` read it, is still what the database holds,
        for a caller that subscribed to the agent's channel since: every change to an
        agent row publishes after its commit, and no wake at all was delivered between
        the start of that read and now. Answers once per authentication."""
        read = self._read_at.pop(row.id, None)
        return read is not None and read[0] is row and read[1] == self._delivered()

    def seen(self, agent_id: uuid.UUID, at: float | None = None) -> None:
        self._seen[agent_id] = time.time() if at is None else at
        self._unsaved.add(agent_id)

    @contextlib.contextmanager
    def turn(self, agent_id: uuid.UUID, sub: Any) -> Iterator[None]:
        """One long-poll per agent at a time (in this process): a newer request of the
        same agent supersedes the one waiting, which answers at once (no change). An
        agent whose connection was cut leaves a request behind; the newest one wins."""
        older = self._polls.get(agent_id)
        if older is not None:
            older.supersede()
        self._polls[agent_id] = sub
        try:
            yield
        finally:
            if self._polls.get(agent_id) is sub:
                del self._polls[agent_id]

    @contextlib.contextmanager
    def waiting(self, agent_id: uuid.UUID) -> Iterator[None]:
        """Held while one of the agent's requests waits for a change."""
        self._waiting[agent_id] = self._waiting.get(agent_id, 0) + 1
        try:
            yield
        finally:
            left = self._waiting.pop(agent_id) - 1
            if left:
                self._waiting[agent_id] = left

    @property
    def pending_pushes(self) -> int:
        """Agent requests waiting for a change on this process."""
        return sum(self._waiting.values())

    def connected(self, at: float | None = None) -> int:
        """Agents with a request waiting here, or seen here within `connected_window_s`
        (a long-polling agent is back within `long_poll_max_s` of each answer)."""
        at = time.time() if at is None else at
        cutoff = at - self.connected_window_s
        for agent_id in [a for a, t in self._seen.items() if t < cutoff and a not in self._unsaved]:
            del self._seen[agent_id]
        recent = {a for a, t in self._seen.items() if t >= cutoff}
        return len(recent | self._waiting.keys())

    async def save_last_seen(self) -> int:
        """Write `last_seen_at` of the agents seen since the last save; returns how many."""
        unsaved, self._unsaved = self._unsaved, set()
        by_time: dict[int, list[uuid.UUID]] = {}
        for agent_id in unsaved:
            by_time.setdefault(int(self._seen[agent_id]), []).append(agent_id)
        try:
            for at, ids in by_time.items():
                when = dt.datetime.fromtimestamp(at, dt.timezone.utc)
                for i in range(0, len(ids), ROWS_PER_QUERY):
                    await Agent.filter(id__in=ids[i:i + ROWS_PER_QUERY]).update(last_seen_at=when)
        except BaseException:
            self._unsaved |= unsaved  # try again next time
            raise
        return len(unsaved)


async def rotate(rt: Runtime, scope: TenantScope, agent: Agent) -> str:
    scope.require("admin")
    if agent.revoked_at is not None:
        raise Conflict("a revoked agent cannot get a new credential")
    credential, agent.credential_hash = make_credential(AGENT_PREFIX, agent.id)
    await agent.save(update_fields=["credential_hash"])
    await rt.notifier.publish(agent_channel(agent.id))  # end its waiting request now
    await rt.audit.append(actor=scope.actor, action="agent.rotate", tenant_id=scope.tenant_id,
                          target=str(agent.id), address=scope.address)
    return credential


async def revoke(rt: Runtime, scope: TenantScope, agent: Agent) -> None:
    scope.require("admin")
    if agent.revoked_at is None:
        agent.revoked_at = now()
        await agent.save(update_fields=["revoked_at"])
        await rt.notifier.publish(agent_channel(agent.id))
        await rt.audit.append(actor=scope.actor, action="agent.revoke", tenant_id=scope.tenant_id,
                              target=str(agent.id), address=scope.address)
        from hub.services import billing

        await billing.agents_changed(rt, scope.tenant_id)


async def rename(rt: Runtime, scope: TenantScope, agent: Agent, name: str) -> Agent:
    """The name the panel shows (enrolment sets it from the server's hostname)."""
    from hub.services import naming

    return await naming.rename(rt, scope, agent, name, kind="agent", field="hostname", unique=False)


async def delete(rt: Runtime, scope: TenantScope, agent: Agent) -> None:
    """Forget a revoked agent (its history and targets go with it); a live one must be
    revoked first, so deleting is never how a working credential stops."""
    from hub.services import naming

    async def live() -> str | None:
        return None if agent.revoked_at is not None else "revoke the agent before deleting it"

    await naming.delete(rt, scope, agent, kind="agent", label=agent.hostname, refuse=live, permission="admin")


async def set_labels(rt: Runtime, scope: TenantScope, agent: Agent, labels: list[str]) -> Agent:
    scope.require("write")
    agent.labels = check_labels(labels)
    await agent.save(update_fields=["labels"])
    await rt.audit.append(actor=scope.actor, action="agent.labels", tenant_id=scope.tenant_id,
                          target=str(agent.id), address=scope.address, details={"labels": agent.labels})
    return agent


async def agents_with_label(scope: TenantScope, label: str) -> list[Agent]:
    # JSON containment differs between SQLite and PostgreSQL; label sets are small.
    return [a for a in await scope.query(Agent).filter(revoked_at__isnull=True) if label in a.labels]


async def set_enabled(rt: Runtime, scope: TenantScope, agents: list[Agent], enabled: bool) -> None:
    scope.require("deploy")
    if enabled and any(not a.enabled for a in agents):  # one more billed agent, as an enrolment is
        from hub.services import billing

        await billing.require(scope.tenant_id, "new_agents")
    ids = [a.id for a in agents]
    if ids:
        await scope.query(Agent).filter(id__in=ids).update(enabled=enabled)
    for agent in agents:
        agent.enabled = enabled
        await rt.notifier.publish(agent_channel(agent.id))
        await rt.audit.append(actor=scope.actor, action="agent.enable" if enabled else "agent.disable",
                              tenant_id=scope.tenant_id, target=str(agent.id), address=scope.address)
    if agents:
        from hub.services import billing

        await billing.agents_changed(rt, scope.tenant_id)


async def tenant_active(tenant_id: uuid.UUID) -> bool:
    tenant = await Tenant.get(id=tenant_id)
    return not tenant.suspended


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": str(agent.id), "hostname": agent.hostname, "labels": agent.labels,
        "inventory": agent.inventory, "enabled": agent.enabled,
        "revoked": agent.revoked_at is not None,
        "enrolled_at": agent.enrolled_at.isoformat() if agent.enrolled_at else None,
        "last_seen_at": agent.last_seen_at.isoformat() if agent.last_seen_at else None,
        "deployment_id": str(agent.deployment_id) if agent.deployment_id else None,
        "applied_digest": agent.applied_digest, "list_revisions": agent.list_revisions,
        "status": agent.last_status,
    }
