"""Deployments: an immutable Plan snapshot pinned to agents, rolled out in stages.

State machine of a deployment (`Deployment.state`):

    canary ──all canaries applied──► released ──all targets applied──► complete
      │
      └──any canary failed──► failed   (the canaries go back to their previous deployment)

A target (`DeploymentTarget.status`): pending → released → applied | failed, and
released/applied → rolled_back when a canary failure stops the rollout.
Invariants: a deployment's Plan, digest and targets never change after creation; an
agent's `deployment_id` points at the deployment whose Plan it should run; rollback is a
new deployment of an earlier Plan.
"""
from __future__ import annotations

import uuid
from typing import Any

from tortoise.transactions import in_transaction

from hub.errors import Conflict, InvalidInput
from hub.models import Agent, Deployment, DeploymentTarget, PolicyVersion
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


async def _point(rt: Runtime, targets: list[DeploymentTarget], deployment_id: uuid.UUID | None) -> None:
    for t in targets:
        await Agent.filter(id=t.agent_id).update(deployment_id=deployment_id)
        await rt.notifier.publish(agent_channel(t.agent_id))


async def create(rt: Runtime, scope: TenantScope, *, plan_json: str, plan_digest: str,
                 policy_version: PolicyVersion | None, agent_ids: list[uuid.UUID], labels: list[str],
                 canary_ids: list[uuid.UUID], monitor: bool, rollback_of: uuid.UUID | None = None) -> Deployment:
    scope.require("deploy")
    agents = await resolve_targets(scope, agent_ids, labels)
    target_ids = {a.id for a in agents}
    if not set(canary_ids) <= target_ids:
        raise InvalidInput("every canary must be one of the targets")
    canaries = set(canary_ids) if set(canary_ids) != target_ids else set()
    # The deployment, its targets, the agents pointed at it and its audit entry commit
    # together; agents are woken after the commit.
    async with in_transaction() as conn:
        deployment = await Deployment.create(
            tenant_id=scope.tenant_id, policy_version=policy_version, plan_digest=plan_digest,
            plan_json=plan_json, target_agents=[str(i) for i in agent_ids], target_labels=labels,
            canary_agents=sorted(str(i) for i in canaries), monitor=monitor,
            state="canary" if canaries else "released", rollback_of=rollback_of, created_by=scope.actor,
            using_db=conn,
        )
        targets = [
            DeploymentTarget(deployment=deployment, agent_id=a.id, canary=a.id in canaries,
                             status="released" if (a.id in canaries or not canaries) else "pending",
                             previous_deployment_id=a.deployment_id)
            for a in agents
        ]
        await DeploymentTarget.bulk_create(targets, using_db=conn)
        released = [t for t in targets if t.status == "released"]
        for t in released:
            await Agent.filter(id=t.agent_id).using_db(conn).update(deployment_id=deployment.id)
        await rt.audit.append(
            actor=scope.actor, action="deploy.rollback" if rollback_of else "deploy.create",
            tenant_id=scope.tenant_id, target=str(deployment.id), address=scope.address,
            details={"digest": plan_digest, "agents": len(agents), "canaries": len(canaries), "monitor": monitor},
            using_db=conn,
        )
    for t in released:
        await rt.notifier.publish(agent_channel(t.agent_id))
    return deployment


async def deploy_version(rt: Runtime, scope: TenantScope, version: PolicyVersion, **kw: Any) -> Deployment:
    await policies.check_deployable(rt.config, version)
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
    lockout guard has checked its source under today's management settings."""
    source = await _source_of(earlier)
    if source is not None:
        await policies.check_deployable(rt.config, source)
    agent_ids = [t.agent_id for t in await DeploymentTarget.filter(deployment_id=earlier.id)]
    return await create(rt, scope, plan_json=earlier.plan_json, plan_digest=earlier.plan_digest,
                        policy_version=None, agent_ids=agent_ids, labels=[], canary_ids=[],
                        monitor=monitor, rollback_of=earlier.id)


async def on_status(rt: Runtime, agent: Agent, applied_digest: str | None, failed_digest: str | None,
                    healthy: bool, error: str) -> None:
    """Advance rollouts from an agent's report."""
    if agent.deployment_id is None:
        return
    target = await DeploymentTarget.get_or_none(deployment_id=agent.deployment_id, agent_id=agent.id)
    if target is None or target.status != "released":
        return
    deployment = await Deployment.get(id=agent.deployment_id)
    if applied_digest == deployment.plan_digest and healthy:
        target.status = "applied"
    elif failed_digest == deployment.plan_digest or (applied_digest == deployment.plan_digest and not healthy):
        target.status, target.error = "failed", error[:2000]
    else:
        return
    await target.save(update_fields=["status", "error"])
    await advance(rt, deployment)


async def advance(rt: Runtime, deployment: Deployment) -> None:
    targets = await DeploymentTarget.filter(deployment_id=deployment.id)
    canaries = [t for t in targets if t.canary]
    if deployment.state == "canary":
        if any(t.status == "failed" for t in canaries):
            for t in canaries:
                await Agent.filter(id=t.agent_id, deployment_id=deployment.id).update(
                    deployment_id=t.previous_deployment_id)
                await rt.notifier.publish(agent_channel(t.agent_id))
                if t.status != "failed":
                    t.status = "rolled_back"
                    await t.save(update_fields=["status"])
            await _set_state(rt, deployment, "failed")
        elif all(t.status == "applied" for t in canaries):
            rest = [t for t in targets if t.status == "pending"]
            for t in rest:
                t.status = "released"
                await t.save(update_fields=["status"])
            await _point(rt, rest, deployment.id)
            await _set_state(rt, deployment, "released")
            targets = await DeploymentTarget.filter(deployment_id=deployment.id)
    if deployment.state == "released" and all(t.status == "applied" for t in targets):
        await _set_state(rt, deployment, "complete")


async def _set_state(rt: Runtime, deployment: Deployment, state: str) -> None:
    deployment.state = state
    await Deployment.filter(id=deployment.id).update(state=state)
    await rt.audit.append(actor="hub", action=f"deploy.{state}", tenant_id=deployment.tenant_id,
                          target=str(deployment.id))


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
