"""The marketplace (templates) and the library (a tenant's saved configurations)."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import Field

from hub.api_schemas.agents import Label
from hub.api_schemas.common import MAX_INT32, Strict
from hub.api_schemas.policies import NAME, Diagnostic, VersionOut
from hub.services.marketplace import MAX_TEMPLATE_CHARS

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
Value = str | int | list[str]


class BrowseQuery(Strict):
    q: str = Field(default="", max_length=100)
    tag: str = Field(default="", max_length=63)


class PublishIn(Strict):
    source: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS, description="the template file (TOML)")


class ParamOut(Strict):
    name: str
    kind: str = Field(description="port | port_range | rate | int | prefix | prefixes | list_name")
    default: str
    min: int | None
    max: int | None
    description: str


class TemplateOut(Strict):
    slug: str
    title: str
    summary: str
    tags: list[str]
    latest_version: int


class TemplatesOut(Strict):
    templates: list[TemplateOut]


class TemplateDetail(TemplateOut):
    version: int
    why: str = Field(description="the short page of why (markdown)")
    published_by: str
    published_at: dt.datetime | None
    report: dict[str, Any] = Field(description="what the publication pipeline ran: cases, vectors, guard")
    parameters: list[ParamOut]
    versions: list[int]


class TemplateSource(TemplateDetail):
    source: str


class Parameters(Strict):
    slug: str = Field(pattern=SLUG, max_length=63)
    version: int | None = Field(default=None, ge=1, le=MAX_INT32, description="default: the latest")
    parameters: dict[str, Value] = Field(default_factory=dict, max_length=64)


class PreviewIn(Parameters):
    agent_id: uuid.UUID | None = Field(default=None, description="diff against what this agent runs")


class Running(Strict):
    agent_id: uuid.UUID
    digest: str | None
    policy: str | None
    version: int | None
    source: str | None = Field(description="null when the agent runs nothing, or a Plan with no source")


class PreviewOut(Strict):
    slug: str
    version: int
    parameters: dict[str, str]
    source: str
    diagnostics: list[Diagnostic]
    plan_digest: str | None
    explain: str | None
    running: Running | None
    diff: str | None


class InstallIn(Parameters):
    name: str = Field(min_length=1, max_length=200, pattern=NAME)
    tags: list[str] = Field(default_factory=list, max_length=16)
    description: str = Field(default="", max_length=500)


class Origin(Strict):
    slug: str
    version: int
    parameters: dict[str, str]


class LibraryEntryOut(Strict):
    policy_id: uuid.UUID
    name: str
    latest_version: int
    description: str
    tags: list[str]
    template: Origin | None = Field(description="the template version and parameters it came from")
    cloned_from: uuid.UUID | None


class LibraryEntriesOut(Strict):
    entries: list[LibraryEntryOut]


class LibraryEntryDetail(LibraryEntryOut):
    versions: list[VersionOut]


class DescribeIn(Strict):
    tags: list[str] = Field(default_factory=list, max_length=16)
    description: str = Field(default="", max_length=500)


class CloneIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NAME)
    version: int | None = Field(default=None, ge=1, le=MAX_INT32)


class DiffQuery(Strict):
    from_version: int | None = Field(default=None, ge=1, le=MAX_INT32)
    to_version: int | None = Field(default=None, ge=1, le=MAX_INT32)
    other: uuid.UUID | None = Field(default=None, description="compare with this policy's version")


class Side(Strict):
    policy_id: uuid.UUID
    name: str
    version: int


class DiffOut(Strict):
    base: Side = Field(description="the older side (lines marked -)")
    target: Side = Field(description="the newer side (lines marked +)")
    diff: str


class UpgradeQuery(Strict):
    version: int | None = Field(default=None, ge=1, le=MAX_INT32)


class UpgradeIn(UpgradeQuery):
    pass


class UpgradeOut(Strict):
    slug: str
    from_version: int | None
    to_version: int
    parameters: dict[str, str]
    source: str
    diff: str


class LibraryDeployIn(Strict):
    version: int | None = Field(default=None, ge=1, le=MAX_INT32, description="default: the latest version")
    agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10000)
    labels: list[Label] = Field(default_factory=list, max_length=100)
    canary_agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    dry_run: bool = False
