"""Data export (privacy): a tenant's or a person's data as one ZIP of JSON, CSV and JSON Schema.

Invariants:
- Each data kind is one `Kind`: a table of `Field`s and a source of rows. The JSON file, the
  CSV file and the schema are all made from that one table, so they cannot drift apart.
- What is never a field is never exported: password hashes, TOTP secrets, recovery codes,
  session ids and CSRF tokens, token and credential hashes, webhook secrets (and webhook URLs
  beyond their origin: a Slack or Discord URL is itself a credential).
- Rows are read once, in keyset pages of `PAGE`, and written to spooled temporary files that
  move to disk past `SPOOL_BYTES`: a tenant of a million list entries is never in memory
  whole. Each page is consistent; the archive is not one snapshot across pages.
- CSV cells that a spreadsheet would run as a formula get a leading apostrophe.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from tortoise.queryset import QuerySet

from hub.models import (
    Agent,
    AlertChannel,
    ApiToken,
    AuditEntry,
    Deployment,
    Incident,
    IpEntry,
    IpList,
    Membership,
    Policy,
    PolicyVersion,
    Session,
    Tenant,
    User,
)

PAGE = 1000
SPOOL_BYTES = 8 << 20
CHUNK_BYTES = 64 << 10
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The JSON Schema type of each field type; CSV writes objects and arrays as compact JSON.
JSON_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "object": "object",
              "array": "array", "datetime": "string", "uuid": "string"}
FORMATS = {"datetime": "date-time", "uuid": "uuid"}


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # a key of JSON_TYPES
    about: str
    get: Callable[[Any], Any] | None = None  # from the row; default: the attribute `name`
    nullable: bool = False

    def value(self, row: Any) -> Any:
        raw = self.get(row) if self.get is not None else getattr(row, self.name)
        if raw is None:
            return None
        if self.type == "datetime":
            return raw.isoformat()
        if self.type == "uuid":
            return str(raw)
        return raw

    def schema(self) -> dict[str, Any]:
        kind = JSON_TYPES[self.type]
        out: dict[str, Any] = {"type": [kind, "null"] if self.nullable else kind, "description": self.about}
        if self.type in FORMATS:
            out["format"] = FORMATS[self.type]
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    name: str
    about: str
    fields: tuple[Field, ...]
    rows: Callable[[Any], AsyncIterator[Any]]  # the export's subject -> the rows

    def record(self, row: Any) -> dict[str, Any]:
        return {f.name: f.value(row) for f in self.fields}

    def schema(self) -> dict[str, Any]:
        return {
            "$schema": SCHEMA_DIALECT,
            "title": f"{self.name}.json",
            "description": self.about,
            "type": "array",
            "items": {
                "type": "object",
                "properties": {f.name: f.schema() for f in self.fields},
                "required": [f.name for f in self.fields],
                "additionalProperties": False,
            },
        }


def csv_cell(field: Field, value: Any) -> str:
    """A cell as text; strings a spreadsheet would evaluate start with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = str(value)
    if field.type != "integer" and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


async def pages(qs: QuerySet, page: int = PAGE) -> AsyncIterator[Any]:
    """Every row of `qs`, `page` at a time by primary key (keyset, not OFFSET)."""
    key = qs.model._meta.pk_attr
    last = None
    while True:
        q = qs if last is None else qs.filter(**{f"{key}__gt": last})
        batch = await q.order_by(key).limit(page)
        for row in batch:
            yield row
        if len(batch) < page:
            return
        last = batch[-1].pk


async def _one(obj: Any) -> AsyncIterator[Any]:
    yield obj


def _origin(channel: AlertChannel) -> str:
    """An email address as it is; a webhook URL only as scheme://host (its path may be the secret)."""
    if channel.kind == "email":
        return channel.target
    parts = urlsplit(channel.target)
    return f"{parts.scheme}://{parts.hostname or ''}"


def _f(name: str, type_: str, about: str, **kw: Any) -> Field:
    return Field(name, type_, about, **kw)


_AUDIT_FIELDS = (
    _f("seq", "integer", "position in the hub's audit chain"),
    _f("at", "datetime", "when"),
    _f("tenant_id", "uuid", "the tenant it concerns", nullable=True),
    _f("actor", "string", "who: user:<email>, token:<id>, agent:<id> or cli"),
    _f("action", "string", "what was done"),
    _f("target", "string", "what it was done to"),
    _f("address", "string", "the caller's address"),
    _f("details", "object", "the action's particulars"),
    _f("prev_hash", "string", "the previous entry's hash (the chain, to verify it)"),
    _f("hash", "string", "this entry's hash (sha256 over prev_hash and its fields)"),
)

# --- a tenant's data ------------------------------------------------------------------------

TENANT_KINDS: tuple[Kind, ...] = (
    Kind("tenant", "the tenant itself", (
        _f("id", "uuid", "the tenant's id"),
        _f("name", "string", "its name"),
        _f("suspended", "boolean", "suspended by the platform"),
        _f("created_at", "datetime", "when it was created"),
    ), lambda t: _one(t)),
    Kind("members", "the people with access and their roles", (
        _f("user_id", "uuid", "the member's account id", get=lambda m: m.user_id),
        _f("email", "string", "the member's email", get=lambda m: m.user.email),
        _f("role", "string", "viewer, operator, admin or owner"),
    ), lambda t: pages(Membership.filter(tenant_id=t.id).select_related("user"))),
    Kind("agents", "the enrolled hosts (their credentials are not exported)", (
        _f("id", "uuid", "the agent's id"),
        _f("hostname", "string", "its hostname"),
        _f("labels", "array", "its labels"),
        _f("inventory", "object", "what it reported at enrolment"),
        _f("enabled", "boolean", "whether it is enabled"),
        _f("revoked_at", "datetime", "when its credential was revoked", nullable=True),
        _f("enrolled_at", "datetime", "when it enrolled"),
        _f("last_seen_at", "datetime", "when it last called", nullable=True),
        _f("deployment_id", "uuid", "the deployment it should run", nullable=True),
        _f("applied_digest", "string", "the Plan digest it reports running", nullable=True),
        _f("list_revisions", "object", "the list revisions it reports"),
        _f("last_status", "object", "its last status report"),
    ), lambda t: pages(Agent.filter(tenant_id=t.id))),
    Kind("policies", "the policies", (
        _f("id", "uuid", "the policy's id"),
        _f("name", "string", "its name"),
        _f("latest_version", "integer", "its newest version number"),
        _f("created_at", "datetime", "when it was created"),
    ), lambda t: pages(Policy.filter(tenant_id=t.id))),
    Kind("policy_versions", "every version of every policy, with its DSL source", (
        _f("id", "uuid", "the version's id"),
        _f("policy_id", "uuid", "the policy (policies.json)"),
        _f("version", "integer", "the version number"),
        _f("source", "string", "the policy's source text"),
        _f("diagnostics", "array", "the compiler's diagnostics"),
        _f("error_count", "integer", "errors found"),
        _f("warning_count", "integer", "warnings found"),
        _f("plan_digest", "string", "the compiled Plan's sha256", nullable=True),
        _f("created_by", "string", "who saved it"),
        _f("created_at", "datetime", "when"),
    ), lambda t: pages(PolicyVersion.filter(policy__tenant_id=t.id))),
    Kind("deployments", "the deployments (the Plan by its digest)", (
        _f("id", "uuid", "the deployment's id"),
        _f("policy_version_id", "uuid", "the version deployed", nullable=True),
        _f("plan_digest", "string", "the Plan's sha256"),
        _f("target_agents", "array", "agents targeted by id"),
        _f("target_labels", "array", "agents targeted by label"),
        _f("canary_agents", "array", "the canaries"),
        _f("monitor", "boolean", "monitor mode (count, do not drop)"),
        _f("state", "string", "the rollout's state"),
        _f("rollback_of", "uuid", "the deployment this one rolled back", nullable=True),
        _f("created_by", "string", "who deployed"),
        _f("created_at", "datetime", "when"),
    ), lambda t: pages(Deployment.filter(tenant_id=t.id))),
    Kind("lists", "the IP allow and deny lists", (
        _f("id", "uuid", "the list's id"),
        _f("name", "string", "its name"),
        _f("kind", "string", "allow or deny"),
        _f("revision", "integer", "its current revision"),
        _f("created_at", "datetime", "when it was created"),
    ), lambda t: pages(IpList.filter(tenant_id=t.id))),
    Kind("list_entries", "the lists' entries (removed ones still kept as tombstones included)", (
        _f("list_id", "uuid", "the list (lists.json)", get=lambda e: e.ip_list_id),
        _f("network", "string", "an address or a CIDR network"),
        _f("expires_at", "integer", "unix seconds it expires at", nullable=True),
        _f("comment", "string", "its comment"),
        _f("added_rev", "integer", "the list revision that added it"),
        _f("removed_rev", "integer", "the list revision that removed it", nullable=True),
    ), lambda t: pages(IpEntry.filter(ip_list__tenant_id=t.id))),
    Kind("alert_channels", "where alerts go (signing secrets are not exported, webhook URLs only by origin)", (
        _f("id", "uuid", "the channel's id"),
        _f("kind", "string", "email, webhook, slack or discord"),
        _f("name", "string", "its name"),
        _f("target", "string", "the address, or the webhook's scheme and host", get=_origin),
        _f("enabled", "boolean", "whether it is enabled"),
        _f("created_at", "datetime", "when it was created"),
    ), lambda t: pages(AlertChannel.filter(tenant_id=t.id))),
    Kind("incidents", "the incidents raised", (
        _f("id", "uuid", "the incident's id"),
        _f("kind", "string", "what kind of trouble"),
        _f("subject", "string", "what it is about"),
        _f("summary", "string", "one line"),
        _f("details", "object", "the particulars"),
        _f("state", "string", "open or resolved"),
        _f("observations", "integer", "how many times it was seen"),
        _f("opened_at", "datetime", "when it opened"),
        _f("last_seen_at", "datetime", "when it was last seen"),
        _f("resolved_at", "datetime", "when it resolved", nullable=True),
    ), lambda t: pages(Incident.filter(tenant_id=t.id))),
    Kind("audit", "the tenant's audit entries", _AUDIT_FIELDS,
         lambda t: pages(AuditEntry.filter(tenant_id=t.id))),
)

# --- a person's own data --------------------------------------------------------------------

USER_KINDS: tuple[Kind, ...] = (
    Kind("account", "your account (the password hash and second-factor secrets are not exported)", (
        _f("id", "uuid", "your account id"),
        _f("email", "string", "your email"),
        _f("platform_admin", "boolean", "whether you operate the platform", get=lambda u: u.is_platform_admin),
        _f("totp", "boolean", "whether 2FA is on", get=lambda u: u.totp_secret is not None),
        _f("created_at", "datetime", "when you signed up"),
    ), lambda u: _one(u)),
    Kind("memberships", "the tenants you belong to", (
        _f("tenant_id", "uuid", "the tenant", get=lambda m: m.tenant_id),
        _f("tenant_name", "string", "its name", get=lambda m: m.tenant.name),
        _f("role", "string", "your role there"),
    ), lambda u: pages(Membership.filter(user_id=u.id).select_related("tenant"))),
    Kind("sessions", "your browser sessions (their ids and CSRF tokens are not exported)", (
        _f("address", "string", "the address it signed in from"),
        _f("mfa_ok", "boolean", "whether the second factor was given"),
        _f("created_at", "datetime", "when it started"),
        _f("expires_at", "datetime", "when it ends"),
    ), lambda u: pages(Session.filter(user_id=u.id))),
    Kind("tokens", "the API tokens you made (metadata only, never the secret)", (
        _f("id", "uuid", "the token's id"),
        _f("tenant_id", "uuid", "its tenant", get=lambda k: k.tenant_id),
        _f("name", "string", "its name"),
        _f("scopes", "array", "what it may do"),
        _f("created_at", "datetime", "when it was made"),
        _f("expires_at", "datetime", "when it expires", nullable=True),
        _f("revoked_at", "datetime", "when it was revoked", nullable=True),
        _f("last_used_at", "datetime", "when it was last used", nullable=True),
    ), lambda u: pages(ApiToken.filter(created_by_id=u.id))),
    Kind("audit", "the audit entries where you are the actor", _AUDIT_FIELDS,
         lambda u: pages(AuditEntry.filter(actor=f"user:{u.email}"))),
)


def readme(title: str, kinds: tuple[Kind, ...]) -> str:
    lines = [title, "", "Each kind of data is in three files: NAME.json (a JSON array of objects),",
             "NAME.csv (the same rows, a header line first; objects and arrays as JSON; a cell a",
             "spreadsheet would run as a formula starts with an apostrophe) and",
             "schemas/NAME.schema.json (the JSON Schema of NAME.json, fields described).", "",
             "Secrets and hashes of credentials are never exported.", ""]
    lines += [f"{k.name}: {k.about}" for k in kinds]
    return "\n".join(lines) + "\n"


async def _write_kind(zf: zipfile.ZipFile, kind: Kind, subject: Any) -> int:
    """One pass over the rows, a page at a time: the JSON goes into the ZIP as it comes, the
    CSV (a ZIP writes one member at a time) into a spooled file copied in after, so both
    files hold the very same rows."""
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="") as sheet:
        writer = csv.writer(sheet)
        writer.writerow([f.name for f in kind.fields])
        with zf.open(f"{kind.name}.json", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8") as out:
            out.write("[")
            async for row in kind.rows(subject):
                record = kind.record(row)
                out.write(",\n" if count else "\n")
                out.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
                writer.writerow([csv_cell(f, record[f.name]) for f in kind.fields])
                count += 1
            out.write("\n]\n")
        sheet.seek(0)
        with zf.open(f"{kind.name}.csv", "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
            shutil.copyfileobj(sheet, out, CHUNK_BYTES)
    zf.writestr(f"schemas/{kind.name}.schema.json", json.dumps(kind.schema(), indent=2) + "\n")
    return count


async def build(kinds: tuple[Kind, ...], subject: Any, title: str) -> tuple[tempfile.SpooledTemporaryFile, dict[str, int]]:
    """The archive in a spooled file (rewound), and the rows written per kind."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (outlives this call: `chunks` closes it)
    counts: dict[str, int] = {}
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("README.txt", readme(title, kinds))
            for kind in kinds:
                counts[kind.name] = await _write_kind(zf, kind, subject)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, counts


async def chunks(spool: tempfile.SpooledTemporaryFile) -> AsyncIterator[bytes]:
    """The archive, `CHUNK_BYTES` at a time; the file goes when the answer is sent (or dropped)."""
    try:
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk
    finally:
        spool.close()


async def export_tenant(rt: Any, scope: Any) -> tuple[tempfile.SpooledTemporaryFile, str]:
    """The tenant's archive and its file name; the audit log records who took it."""
    tenant = await Tenant.get(id=scope.tenant_id)
    spool, counts = await build(TENANT_KINDS, tenant, f"Bulwark export of tenant {tenant.name} ({tenant.id})")
    await rt.audit.append(actor=scope.actor, action="privacy.export", tenant_id=tenant.id,
                          target=f"tenant:{tenant.id}", address=scope.address, details={"rows": counts})
    return spool, f"bulwark-tenant-{tenant.id}.zip"


async def export_user(rt: Any, user_id: uuid.UUID, actor: str, address: str) -> tuple[tempfile.SpooledTemporaryFile, str]:
    """A person's own archive and its file name; the audit log records it."""
    user = await User.get(id=user_id)
    spool, counts = await build(USER_KINDS, user, f"Bulwark export of the account {user.email}")
    await rt.audit.append(actor=actor, action="privacy.export", target=f"user:{user.id}", address=address,
                          details={"rows": counts})
    return spool, f"bulwark-account-{dt.date.today().isoformat()}.zip"
