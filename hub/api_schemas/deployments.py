"""Deployments: a compiled Plan pinned to agents, rolled out in stages; rollback."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import Field

from hub.api_schemas.agents import Label
from hub.api_schemas.common import MAX_INT32, Strict


class DeployIn(Strict):
    policy_id: uuid.UUID
    version: int | None = Field(default=None, ge=1, le=MAX_INT32, description="default: the latest version")
    agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10000)
    labels: list[Label] = Field(default_factory=list, max_length=100)
    canary_agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    dry_run: bool = Field(default=False, description="deploy in monitor mode: count, never drop")


class RollbackIn(Strict):
    dry_run: bool = False


class TargetOut(Strict):
    agent_id: uuid.UUID
    canary: bool
    status: Literal["pending", "released", "applied", "failed", "rolled_back"]
    error: str | None = Field(description="why the agent failed to apply the Plan")


class DeploymentOut(Strict):
    id: uuid.UUID
    digest: str = Field(description="sha256 of the Plan: the deployment's name")
    state: Literal["canary", "released", "complete", "failed"]
    monitor: bool = Field(description="dry run: the Plan counts but never drops")
    target_agents: list[uuid.UUID]
    target_labels: list[str]
    canary_agents: list[uuid.UUID]
    rollback_of: uuid.UUID | None
    created_by: str
    created_at: dt.datetime | None
    policy_version_id: uuid.UUID | None = Field(description="null for a rollback")


class DeploymentDetail(DeploymentOut):
    targets: list[TargetOut]


class DeploymentsOut(Strict):
    deployments: list[DeploymentOut]
