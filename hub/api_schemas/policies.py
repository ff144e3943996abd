"""Policies and their versions (every save is a new version, checked and compiled)."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import Field

from hub.api_schemas.common import Strict
from hub.services.policies import MAX_SOURCE_CHARS

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class PolicyIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NAME)
    source: str = Field(max_length=MAX_SOURCE_CHARS, description="the policy in the rule language")


class PolicyRenameIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NAME)


class SourceIn(Strict):
    source: str = Field(max_length=MAX_SOURCE_CHARS)


class Diagnostic(Strict):
    severity: Literal["error", "warning"]
    line: int = Field(description="1-based; 0 for the whole file")
    col: int
    message: str
    hint: str | None
    rendered: str = Field(description="file:line:col, the source line and a caret")


class VersionOut(Strict):
    version: int
    errors: int
    warnings: int
    diagnostics: list[Diagnostic]
    plan_digest: str | None = Field(description="null when the version has errors (it cannot be deployed)")
    created_by: str
    created_at: dt.datetime | None


class VersionWithSource(VersionOut):
    source: str


class PolicyOut(Strict):
    id: uuid.UUID
    name: str
    latest_version: int


class PoliciesOut(Strict):
    policies: list[PolicyOut]


class PolicySaved(PolicyOut):
    latest: VersionOut


class PolicyDetail(PolicyOut):
    latest: VersionWithSource


class VersionsOut(Strict):
    versions: list[VersionOut]
