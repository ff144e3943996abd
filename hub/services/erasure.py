"""Closing an account or a tenant, and erasing it, as the privacy policy promises.

Invariants:
- Closing takes effect at once for access (the account's sessions end and it cannot sign
  in; a tenant is gone for its members, its tokens and agents are revoked) and schedules
  erasure: one `ErasureRequest` per subject, due `erasure_delay_s` after closing.
- The `erasure` job (every `erasure_interval_s`, a day; with the delay at most 30 days,
  which hub.config checks) runs each due request through its kind's `STEPS`, in order.
  A step's writes and the record that it is done commit together: a crash between steps
  resumes at the next one, a crash within a step rolls it back and it runs again. Every
  step deletes what is left or pseudonymises what is not yet a pseudonym, so running a
  request again changes nothing.
- Kept, and said so in the report with the reason: a closed tenant's billing account,
  minimised to a `BillingRecord` (the ids that name its invoices at Stripe) for
  `retention_billing_records_s` (10 years, the commercial and tax law's term); the audit
  entries, since removing them would break the log's integrity, with their actor, target
  and address replaced by pseudonyms (hub.services.audit: the chain still verifies).
- The report names no person: the subject by id, people by pseudonym. It is stored with the
  request and written to data_dir/erasure/<request id>.json (0600).
- The account's own row goes last: the steps before it need its email to find its traces.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from hub import files
from hub.clock import now_utc
from hub.errors import Conflict, Forbidden
from hub.models import (
    Agent,
    AlertChannel,
    ApiToken,
    AssistantUsage,
    AuditEntry,
    BillingAccount,
    BillingRecord,
    Deployment,
    EmailChange,
    ErasureRequest,
    Invitation,
    LoginFailure,
    Membership,
    MetricPoint,
    MetricRollup,
    OutboxMessage,
    PolicyVersion,
    Session,
    Tenant,
    TopSource,
    TrafficAggregate,
    User,
)
from hub.services import lists
from hub.services.audit import field_hash, pseudonym
from hub.services.background import job

if TYPE_CHECKING:  # hub.runtime imports the audit log, which imports the job registry
    from hub.runtime import Runtime

log = logging.getLogger("bulwark.hub.erasure")
ERASURE_DAYS = 30  # the policy's promise (hub.config checks the settings keep it)


# ---- closing ------------------------------------------------------------------------------

async def _schedule(rt: Runtime, kind: str, subject_id: uuid.UUID, now: dt.datetime, conn: Any) -> ErasureRequest:
    request, _ = await ErasureRequest.get_or_create(
        kind=kind, subject_id=subject_id,
        defaults={"requested_at": now, "due_at": now + dt.timedelta(seconds=rt.config.erasure_delay_s)},
        using_db=conn)
    return request


async def close_tenant(rt: Runtime, tenant_id: uuid.UUID, *, actor: str, address: str,
                       now: dt.datetime | None = None) -> ErasureRequest:
    """Close a tenant: gone for its members now, its tokens and agents revoked (billing
    follows: no active agents, nothing to bill), erased by the job."""
    from hub.services import billing
    from hub.services.agents import agent_channel

    now = now or now_utc()
    agents = await Agent.filter(tenant_id=tenant_id, revoked_at__isnull=True).values_list("id", flat=True)
    async with in_transaction() as conn:
        updated = await Tenant.filter(id=tenant_id, closed_at__isnull=True).using_db(conn).update(closed_at=now)
        if updated:
            await ApiToken.filter(tenant_id=tenant_id, revoked_at__isnull=True).using_db(conn).update(revoked_at=now)
            await Agent.filter(tenant_id=tenant_id, revoked_at__isnull=True).using_db(conn).update(revoked_at=now)
            await rt.audit.append(actor=actor, action="tenant.close", tenant_id=tenant_id, target=f"tenant:{tenant_id}",
                                  address=address, using_db=conn)
        request = await _schedule(rt, "tenant", tenant_id, now, conn)
    for agent_id in agents:
        await rt.notifier.publish(agent_channel(agent_id))  # its waiting request ends now
    await billing.agents_changed(rt, tenant_id)
    return request


async def close_account(rt: Runtime, user: User, session: Session | None, *, address: str,
                        now: dt.datetime | None = None) -> tuple[ErasureRequest, list[uuid.UUID]]:
    """Close the signed-in person's account (a fresh proof needed): the tenants where they
    are the only member close with it; being the last owner of a tenant others still use is
    a Conflict (hand it over or close it first). Returns the request and the tenants closed."""
    from hub.services.accounts import require_fresh

    if session is None:
        raise Forbidden("closing an account needs a signed-in session")
    require_fresh(session)
    return await close_proven_account(rt, user, address=address, now=now)


async def close_proven_account(rt: Runtime, user: User, *, address: str,
                               now: dt.datetime | None = None) -> tuple[ErasureRequest, list[uuid.UUID]]:
    """`close_account` once the caller has checked the proof (the panel's form asks for the
    password and code itself)."""
    now = now or now_utc()
    alone, blocking = [], []
    for m in await Membership.filter(user_id=user.id, tenant__closed_at__isnull=True):
        members = await Membership.filter(tenant_id=m.tenant_id).count()
        owners = await Membership.filter(tenant_id=m.tenant_id, role="owner").count()
        if members == 1:
            alone.append(m.tenant_id)
        elif m.role == "owner" and owners == 1:
            blocking.append(str(m.tenant_id))
    if blocking:
        raise Conflict("you are the last owner of tenants others use: make someone else owner, or close "
                       "them, first", details={"tenants": blocking})
    actor = f"user:{user.email}"
    for tenant_id in alone:
        await close_tenant(rt, tenant_id, actor=actor, address=address, now=now)
    async with in_transaction() as conn:
        await User.filter(id=user.id, closed_at__isnull=True).using_db(conn).update(closed_at=now)
        await Session.filter(user_id=user.id).using_db(conn).delete()
        await rt.audit.append(actor=actor, action="account.close", target=f"user:{user.id}", address=address,
                              details={"tenants_closed": [str(t) for t in alone]}, using_db=conn)
        request = await _schedule(rt, "user", user.id, now, conn)
    return request, alone


# ---- the steps ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Subject:
    """What the steps need to find a subject's traces (loaded once per run)."""
    id: uuid.UUID
    email: str = ""
    former: tuple[str, ...] = ()  # addresses the account had before a change of email

    @property
    def actor(self) -> str:
        return f"user:{self.email}"

    @property
    def emails(self) -> list[str]:
        return [self.email, *self.former]

    @property
    def actors(self) -> list[str]:
        return [f"user:{e}" for e in self.emails]


Step = Callable[["Runtime", Subject, dt.datetime], Awaitable[int]]


def _actor_pseudonym(rt: Runtime, actor: str) -> str:
    return pseudonym(field_hash(rt.audit.keys.chain, "actor", actor))


async def _user_audit(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    mine = AuditEntry.filter(actor__in=s.actors)
    about = AuditEntry.filter(target__in=[*s.emails, *s.actors, str(s.id), f"user:{s.id}"])
    return await rt.audit.pseudonymise(mine) + await rt.audit.pseudonymise(about, ("target",))


async def _user_authored(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    alias = _actor_pseudonym(rt, s.actor)
    return (await PolicyVersion.filter(created_by=s.actor).update(created_by=alias)
            + await Deployment.filter(created_by=s.actor).update(created_by=alias))


async def _user_invitations(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return await Invitation.filter(email__in=s.emails).delete()


async def _user_login_failures(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    account = f"account:{s.email}"
    return await LoginFailure.filter(Q(key=account) | Q(key__startswith=account + "@") | Q(key=f"mfa:{s.id}")).delete()


async def _user_outbox(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return await OutboxMessage.filter(kind="email", target__in=s.emails).delete()


async def _user_alert_channels(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return await AlertChannel.filter(kind="email", target__in=s.emails).delete()


async def _user_account(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    """The account itself, with its memberships, sessions and recovery codes (cascade)."""
    return await User.filter(id=s.id).delete()


async def _tenant_billing(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    account = await BillingAccount.get_or_none(tenant_id=s.id)
    if account is None or await BillingRecord.exists(tenant_id=s.id):
        return 0
    closed = (await Tenant.get_or_none(id=s.id).values_list("closed_at", flat=True)) or now
    await BillingRecord.create(
        tenant_id=s.id, customer_id=account.customer_id, subscription_id=account.subscription_id,
        last_state=account.state, last_quantity=account.quantity, closed_at=closed,
        keep_until=closed + dt.timedelta(seconds=rt.config.retention_billing_records_s))
    return 1


async def _tenant_audit(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return await rt.audit.pseudonymise(AuditEntry.filter(tenant_id=s.id))


async def _tenant_metrics(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return (await MetricPoint.filter(tenant_id=s.id).delete() + await MetricRollup.filter(tenant_id=s.id).delete()
            + await TopSource.filter(tenant_id=s.id).delete() + await TrafficAggregate.filter(tenant_id=s.id).delete()
            + await AssistantUsage.filter(tenant_id=s.id).delete())


async def _tenant_outbox(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    return await OutboxMessage.filter(tenant_id=s.id).delete()


async def _tenant_rows(rt: Runtime, s: Subject, now: dt.datetime) -> int:
    """The tenant and all it owns (agents, policies, deployments, lists, channels,
    incidents, memberships, tokens, its billing account: the schema's cascades, and the
    lists' entries, which have none)."""
    await lists.delete_tenant_lists(None, s.id)
    return await Tenant.filter(id=s.id).delete()


# kind -> the steps in order: (name, what it does, step). Names are stored in the request.
STEPS: dict[str, list[tuple[str, str, Step]]] = {
    "user": [
        ("audit", "audit entries by or about the account: actor, target and address pseudonymised", _user_audit),
        ("authored", "policy versions and deployments it made: author pseudonymised", _user_authored),
        ("invitations", "invitations to its email deleted", _user_invitations),
        ("login_failures", "failed sign-ins counted against it deleted", _user_login_failures),
        ("outbox", "messages to its email deleted", _user_outbox),
        ("alert_channels", "alert channels sending to its email deleted", _user_alert_channels),
        ("account", "the account, its memberships, sessions and recovery codes deleted", _user_account),
    ],
    "tenant": [
        ("billing", "billing account minimised into a billing record", _tenant_billing),
        ("audit", "the tenant's audit entries: actor, target and address pseudonymised", _tenant_audit),
        ("metrics", "metrics, rollups and dropped-packet samples deleted", _tenant_metrics),
        ("outbox", "its messages deleted", _tenant_outbox),
        ("tenant", "the tenant and everything it owns deleted", _tenant_rows),
    ],
}


async def _subject(request: ErasureRequest) -> Subject:
    if request.kind == "user":
        email = await User.filter(id=request.subject_id).values_list("email", flat=True)
        former = await EmailChange.filter(user_id=request.subject_id, used_at__isnull=False) \
            .values_list("old_email", flat=True)
        return Subject(request.subject_id, email[0] if email else "", tuple(e for e in former if e))
    return Subject(request.subject_id)


async def run_request(rt: Runtime, request: ErasureRequest, now: dt.datetime) -> dict[str, Any]:
    """Run what is left of `request`; returns its report."""
    subject = await _subject(request)
    done = {name for name, _ in request.steps_done}
    for name, _about, step in STEPS[request.kind]:
        if name in done:
            continue
        if request.kind == "user" and not subject.email:
            count = 0  # the account row is already gone: nothing left to find by it
        else:
            await rt.audit.upgrade()  # a format-1 chain is rewritten before, not inside, a step
            async with in_transaction() as conn:
                count = await step(rt, subject, now)
                request.steps_done = [*request.steps_done, [name, count]]
                await request.save(update_fields=["steps_done"], using_db=conn)
            continue
        request.steps_done = [*request.steps_done, [name, count]]
        await request.save(update_fields=["steps_done"])
    request.report = await _report(rt, request, now)
    request.state, request.finished_at = "done", now
    await request.save(update_fields=["report", "state", "finished_at"])
    _write_report(rt, request)
    await rt.audit.append(actor="hub", action="privacy.erased", tenant_id=None,
                          target=f"{request.kind}:{request.subject_id}",
                          details={"request": str(request.id), "steps": dict(request.steps_done)})
    return request.report


async def _report(rt: Runtime, request: ErasureRequest, now: dt.datetime) -> dict[str, Any]:
    about = {name: text for name, text, _ in STEPS[request.kind]}
    kept: list[dict[str, Any]] = []
    if request.kind == "tenant":
        record = await BillingRecord.get_or_none(tenant_id=request.subject_id)
        if record is not None:
            kept.append({"what": "billing record (Stripe customer and subscription ids, last state and quantity)",
                         "rows": 1, "until": record.keep_until.isoformat(),
                         "why": "commercial and tax law: invoices and the records behind them are kept 10 years"})
        entries = await AuditEntry.filter(tenant_id=request.subject_id).count()
    else:
        entries = dict(request.steps_done).get("audit", 0)
    kept.append({"what": "audit entries", "rows": entries, "until": None,
                 "why": "the audit log is append-only and hash-chained: removing entries would break its "
                        "verification; their actor, target and address are pseudonyms now"})
    return {
        "request": str(request.id), "kind": request.kind, "subject": str(request.subject_id),
        "requested_at": request.requested_at.isoformat(), "finished_at": now.isoformat(),
        "steps": [{"step": name, "rows": count, "what": about.get(name, name)} for name, count in request.steps_done],
        "kept": kept,
        "backups": "backups holding the erased data expire within 30 days (restic forget --keep-within 30d)",
    }


def report_path(rt: Runtime, request_id: uuid.UUID) -> Path:
    return Path(rt.config.data_dir) / "erasure" / f"{request_id}.json"


def _write_report(rt: Runtime, request: ErasureRequest) -> None:
    path = report_path(rt, request.id)
    files.private_dir(path.parent)
    files.private_file(path)
    path.write_text(json.dumps(request.report, indent=2, sort_keys=True) + "\n")


@job("erasure", every_s="erasure_interval_s")
async def run_due(rt: Runtime, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Erase every closed account and tenant whose time has come; their reports."""
    now = now or now_utc()
    reports = []
    for request in await ErasureRequest.filter(state="scheduled", due_at__lte=now).order_by("requested_at"):
        reports.append(await run_request(rt, request, now))
        log.info("erased %s %s", request.kind, request.subject_id)
    return reports
