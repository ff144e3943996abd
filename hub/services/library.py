"""The library: a tenant's saved configurations. Each is a policy (versioned by
`policies`: every save a new version) with an optional `LibraryEntry` that adds a
description, tags and, for one installed from the marketplace, the template version and
parameters. Cloning copies a version into a new policy; deploying is
`deployments.deploy_version` (canary, rollout and rollback as for any policy).
"""
from __future__ import annotations

import re
from typing import Any

from tortoise.expressions import Q

from hub.errors import InvalidInput, NotFound
from hub.models import LibraryEntry, Policy, PolicyVersion
from hub.runtime import Runtime
from hub.services import marketplace, policies
from hub.services.scope import TenantScope

TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_TAGS = 16
MAX_RESULTS = 500


def clean_tags(tags: list[str]) -> list[str]:
    bad = [t[:40] for t in tags if not TAG.fullmatch(t)]
    if bad:
        raise InvalidInput("a tag is lower case letters, digits and -, at most 32",
                           details=[{"tag": t} for t in bad])
    out = list(dict.fromkeys(tags))
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags")
    return out


async def search(scope: TenantScope, q: str = "", tag: str = "") -> list[tuple[Policy, LibraryEntry | None]]:
    """Policies whose name, description or template match `q` (any case), with `tag`."""
    query = scope.query(Policy)
    if q:
        query = query.filter(Q(name__icontains=q) | Q(library_entry__description__icontains=q)
                             | Q(library_entry__template_slug__icontains=q))
    rows = await query.order_by("name").limit(MAX_RESULTS)
    entries = {e.policy_id: e for e in await scope.query(LibraryEntry).filter(policy_id__in=[p.id for p in rows])}
    found = [(p, entries.get(p.id)) for p in rows]
    return [(p, e) for p, e in found if not tag or (e is not None and tag in e.tags)]


async def entry_of(scope: TenantScope, policy: Policy) -> LibraryEntry | None:
    return await scope.query(LibraryEntry).get_or_none(policy_id=policy.id)


async def describe(rt: Runtime, scope: TenantScope, policy: Policy, tags: list[str],
                   description: str) -> LibraryEntry:
    scope.require("write")
    tags = clean_tags(tags)
    entry = await entry_of(scope, policy)
    if entry is None:
        entry = await LibraryEntry.create(tenant_id=scope.tenant_id, policy=policy, tags=tags,
                                          description=description)
    else:
        entry.tags, entry.description = tags, description
        await entry.save()
    await rt.audit.append(actor=scope.actor, action="library.describe", tenant_id=scope.tenant_id,
                          target=str(policy.id), address=scope.address, details={"tags": tags})
    return entry


async def version(policy: Policy, number: int | None) -> PolicyVersion:
    v = await PolicyVersion.get_or_none(policy_id=policy.id, version=number or policy.latest_version)
    if v is None:
        raise NotFound("policy version")
    return v


async def clone(rt: Runtime, scope: TenantScope, policy: Policy, number: int | None, name: str) -> Policy:
    """A new policy whose version 1 is `policy`'s version `number`; its entry keeps the
    origin (template and parameters) and says what it was cloned from."""
    scope.require("write")
    v = await version(policy, number)
    copy, _ = await policies.create(rt, scope, name, v.source)
    entry = await entry_of(scope, policy)
    await LibraryEntry.create(
        tenant_id=scope.tenant_id, policy=copy, cloned_from=policy.id,
        description=entry.description if entry else "", tags=entry.tags if entry else [],
        template_slug=entry.template_slug if entry else None,
        template_version=entry.template_version if entry else None,
        parameters=entry.parameters if entry else {})
    return copy


async def diff(scope: TenantScope, policy: Policy, a: int | None, b: int | None,
               other: Policy | None = None) -> dict[str, Any]:
    """Version `a` of `policy` against version `b` of `other` (default: the same policy;
    `a` defaults to the one before `b`, `b` to the latest)."""
    right_policy = other or policy
    right = await version(right_policy, b)
    if a is None and other is None:
        a = max(1, right.version - 1)
    left = await version(policy, a)
    return {"base": {"policy_id": policy.id, "name": policy.name, "version": left.version},
            "target": {"policy_id": right_policy.id, "name": right_policy.name, "version": right.version},
            "diff": marketplace.diff_text(left.source, right.source, f"{policy.name} v{left.version}",
                                          f"{right_policy.name} v{right.version}")}


def entry_json(policy: Policy, entry: LibraryEntry | None) -> dict[str, Any]:
    origin = None
    if entry is not None and entry.template_slug is not None:
        origin = {"slug": entry.template_slug, "version": entry.template_version, "parameters": entry.parameters}
    return {"policy_id": policy.id, "name": policy.name, "latest_version": policy.latest_version,
            "description": entry.description if entry else "", "tags": entry.tags if entry else [],
            "template": origin, "cloned_from": entry.cloned_from if entry else None}
