"""Deployments: an immutable Plan snapshot pinned to agents, rolled out in stages.

The states and their transitions are `hub.rollout`'s tables; this module runs them.
Invariants:
- A deployment's Plan, digest and targets never change after creation; rollback is a
  new deployment of an earlier Plan.
- An agent's `deployment_id` points at the deployment whose Plan it should run.
- Creating a deployment, and each report that advances one, is one transaction: the
  rows it changes, the agents' pointers and the audit entry commit together or not at
  all. Advancing runs under the deployment's row lock (`SELECT … FOR NO KEY UPDATE` on
  PostgreSQL, across hub processes; SQLite has one writer), so reports racing from
  several canaries make exactly one transition and one audit entry. Creating locks
  the target agents' rows, so each target's `previous_deployment_id` is what the
  agent pointed at when the new deployment took it over.
- Agents are woken (notifier) only after the commit, so they never read a change that
  might still roll back.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tortoise.transactions import in_transaction

from hub import rollout
from hub.errors import InvalidInput
from hub.models import Agent, Deployment, DeploymentTarget, PolicyVersion
from hub.rollout import Event, State, TargetEvent, TargetStatus
from hub.runtime import Runtime
from hub.services import policies
from hub.services.agents import agent_channel, agents_with_label
from hub.services.scope import TenantScope


async def resolve_targets(scope: TenantScope, agent_ids: list[uuid.UUID], labels: list[str]) -> list[Agent]:
    found: dict[uuid.UUID, Agent] = {}
    for agent_id in agent_ids:
        agent = await scope.get(Agent, agent_id, "agent")
        if agent.revoked_at is None:
            found[agent.id] = agent
    for label in labels:
        for agent in await agents_with_label(scope, label):
            found[agent.id] = agent
    if not found:
        raise InvalidInput("the deployment targets no agent")
    return sorted(found.values(), key=lambda a: str(a.id))


async def _lock_agents(conn: Any, agent_ids: list[uuid.UUID]) -> list[Agent]:
    """Lock agents' rows in one order (by id), as every transaction here does before it
    moves their pointers, so two of them cannot deadlock. NO KEY UPDATE, like the
    deployment's lock: rows that only point at a locked one (foreign keys) still insert."""
    if not agent_ids:
        return []
    return await Agent.filter(id__in=sorted(set(agent_ids))).order_by("id").select_for_update(no_key=True).using_db(conn)


async def _wake(rt: Runtime, agent_ids: list[uuid.UUID]) -> None:
    for agent_id in agent_ids:
        await rt.notifier.publish(agent_channel(agent_id))


async def create(rt: Runtime, scope: TenantScope, *, plan_json: str, plan_digest: str,
                 policy_version: PolicyVersion | None, agent_ids: list[uuid.UUID], labels: list[str],
                 canary_ids: list[uuid.UUID], monitor: bool, rollback_of: uuid.UUID | None = None) -> Deployment:
    scope.require("deploy")
    from hub.services import billing

    await billing.require(scope.tenant_id, "deploy")
    agents = await resolve_targets(scope, agent_ids, labels)
    target_ids = {a.id for a in agents}
    if not set(canary_ids) <= target_ids:
        raise InvalidInput("every canary must be one of the targets")
    canaries = set(canary_ids) if set(canary_ids) != target_ids else set()
    async with in_transaction() as conn:
        # The targets' rows, locked in one order (no deadlock between two creations):
        # their pointers are read and moved with no other deployment in between.
        previous = {a.id: a.deployment_id for a in await _lock_agents(conn, list(target_ids))}
        deployment = await Deployment.create(
            tenant_id=scope.tenant_id, policy_version=policy_version, plan_digest=plan_digest,
            plan_json=plan_json, target_agents=[str(i) for i in agent_ids], target_labels=labels,
            canary_agents=sorted(str(i) for i in canaries), monitor=monitor,
            state=rollout.initial(bool(canaries)), rollback_of=rollback_of, created_by=scope.actor,
            using_db=conn,
        )
        targets = [
            DeploymentTarget(deployment=deployment, agent_id=a.id, canary=a.id in canaries,
                             status=rollout.initial_target(canary=a.id in canaries, has_canaries=bool(canaries)),
                             previous_deployment_id=previous.get(a.id))
            for a in agents
        ]
        await DeploymentTarget.bulk_create(targets, using_db=conn)
        released = [t.agent_id for t in targets if t.status == TargetStatus.RELEASED]
        if released:
            await Agent.filter(id__in=released).using_db(conn).update(deployment_id=deployment.id)
        await rt.audit.append(
            actor=scope.actor, action="deploy.rollback" if rollback_of else "deploy.create",
            tenant_id=scope.tenant_id, target=str(deployment.id), address=scope.address,
            details={"digest": plan_digest, "agents": len(agents), "canaries": len(canaries), "monitor": monitor},
            using_db=conn,
        )
    await _wake(rt, released)
    return deployment


async def deploy_version(rt: Runtime, scope: TenantScope, version: PolicyVersion, **kw: Any) -> Deployment:
    await policies.check_deployable(rt.config, version)
    await asyncio.to_thread(policies.check_plan_deployable, rt.config, version.plan_json, version)
    return await create(rt, scope, plan_json=version.plan_json, plan_digest=version.plan_digest,
                        policy_version=version, **kw)


async def _source_of(deployment: Deployment) -> PolicyVersion | None:
    """The policy version a deployment's Plan was compiled from, through earlier rollbacks."""
    seen: set[uuid.UUID] = set()
    while deployment.policy_version_id is None and deployment.rollback_of is not None \
            and deployment.rollback_of not in seen:
        seen.add(deployment.rollback_of)
        earlier = await Deployment.get_or_none(id=deployment.rollback_of)
        if earlier is None:
            return None
        deployment = earlier
    if deployment.policy_version_id is None:
        return None
    return await PolicyVersion.get_or_none(id=deployment.policy_version_id)


async def rollback_to(rt: Runtime, scope: TenantScope, earlier: Deployment, monitor: bool = False) -> Deployment:
    """A new deployment of `earlier`'s Plan to the agents `earlier` targeted, once the
    lockout guard has checked its source and its Plan under today's management settings."""
    source = await _source_of(earlier)
    if source is not None:
        await policies.check_deployable(rt.config, source)
    await asyncio.to_thread(policies.check_plan_deployable, rt.config, earlier.plan_json, source)
    agent_ids = [t.agent_id for t in await DeploymentTarget.filter(deployment_id=earlier.id)]
    back = await create(rt, scope, plan_json=earlier.plan_json, plan_digest=earlier.plan_digest,
                        policy_version=None, agent_ids=agent_ids, labels=[], canary_ids=[],
                        monitor=monitor, rollback_of=earlier.id)
    from hub.services import alerts

    await alerts.notice(rt, scope.tenant_id, "deployment_rolled_back", str(back.id),
                        f"{scope.actor} rolled {len(agent_ids)} agent(s) back to {earlier.plan_digest[:12]}")
    return back


async def on_status(rt: Runtime, agent: Agent, applied_digest: str | None, failed_digest: str | None,
                    healthy: bool, error: str) -> None:
    """Advance rollouts from an agent's report: its target's step and whatever that
    calls for, in one transaction under the deployment's row lock."""
    if agent.deployment_id is None:
        return
    async with in_transaction() as conn:
        deployment = await Deployment.filter(id=agent.deployment_id).select_for_update(no_key=True) \
            .using_db(conn).first()
        if deployment is None:
            return
        # Read under the lock: a report that raced ours may have moved it already.
        target = await DeploymentTarget.filter(deployment_id=deployment.id, agent_id=agent.id) \
            .using_db(conn).first()
        if target is None or target.status != TargetStatus.RELEASED:
            return
        event = rollout.report_event(deployment.plan_digest, applied_digest, failed_digest, healthy)
        if event is None:
            return
        target.status = rollout.target_step(target.status, event)
        if event is TargetEvent.FAILED:
            target.error = error[:2000]
        await target.save(update_fields=["status", "error"], using_db=conn)
        before = deployment.state
        woken = await _advance(rt, conn, deployment)
    await _wake(rt, woken)
    if deployment.state == State.FAILED and before != State.FAILED:
        from hub.services import alerts

        await alerts.observe(rt, deployment.tenant_id, "deployment_failed", deployment.plan_digest,
                             f"deployment {deployment.plan_digest[:12]} failed on a canary and was rolled back",
                             {"deployment_id": str(deployment.id), "digest": deployment.plan_digest,
                              "error": error[:500]})


async def _advance(rt: Runtime, conn: Any, deployment: Deployment) -> list[uuid.UUID]:
    """Take every step the targets call for (the caller holds the row lock); returns
    the agents whose pointer moved, to wake after the commit."""
    woken: list[uuid.UUID] = []
    while True:
        targets = await DeploymentTarget.filter(deployment_id=deployment.id).using_db(conn)
        event = rollout.next_event(deployment.state, (t.status for t in targets if t.canary),
                                   (t.status for t in targets))
        if event is None:
            return woken
        state = rollout.step(deployment.state, event)
        if event is Event.CANARY_FAILED:
            await _lock_agents(conn, [t.agent_id for t in targets if t.canary])
            for t in targets:
                if not t.canary:
                    continue
                await Agent.filter(id=t.agent_id, deployment_id=deployment.id).using_db(conn) \
                    .update(deployment_id=t.previous_deployment_id)
                woken.append(t.agent_id)
                if t.status != TargetStatus.FAILED:
                    await _target_step(conn, t, TargetEvent.ROLL_BACK)
        elif event is Event.CANARIES_APPLIED:
            rest = [t for t in targets if t.status == TargetStatus.PENDING]
            await _lock_agents(conn, [t.agent_id for t in rest])
            for t in rest:
                await _target_step(conn, t, TargetEvent.RELEASE)
            if rest:
                await Agent.filter(id__in=[t.agent_id for t in rest]).using_db(conn) \
                    .update(deployment_id=deployment.id)
            woken += [t.agent_id for t in rest]
        await _set_state(rt, conn, deployment, state)


async def _target_step(conn: Any, target: DeploymentTarget, event: TargetEvent) -> None:
    target.status = rollout.target_step(target.status, event)
    await target.save(update_fields=["status"], using_db=conn)


async def _set_state(rt: Runtime, conn: Any, deployment: Deployment, state: State) -> None:
    deployment.state = state
    await Deployment.filter(id=deployment.id).using_db(conn).update(state=state.value)
    await rt.audit.append(actor="hub", action=f"deploy.{state.value}", tenant_id=deployment.tenant_id,
                          target=str(deployment.id), using_db=conn)


async def deployment_json(d: Deployment, *, with_targets: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(d.id), "digest": d.plan_digest, "state": d.state, "monitor": d.monitor,
        "target_agents": d.target_agents, "target_labels": d.target_labels, "canary_agents": d.canary_agents,
        "rollback_of": str(d.rollback_of) if d.rollback_of else None, "created_by": d.created_by,
        "created_at": d.created_at.isoformat() if d.created_at else None,
        "policy_version_id": str(d.policy_version_id) if d.policy_version_id else None,
    }
    if with_targets:
        out["targets"] = [
            {"agent_id": str(t.agent_id), "canary": t.canary, "status": t.status, "error": t.error}
            for t in await DeploymentTarget.filter(deployment_id=d.id).order_by("id")
        ]
    return out
