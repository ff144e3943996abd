"""Alerts: observations become incidents, incidents become messages in the outbox.

Invariants:
- One open incident per (tenant, kind, subject): a repeated observation only counts on
  it (`observations`, `last_seen_at`); people get one message when it opens and one when
  it resolves, not one a minute.
- An observation within the rule's quiet period (`quiet_s`) after a resolve re-opens that
  incident silently: a flapping agent is one incident, not a storm.
- A disabled rule opens nothing; resolving still works, so nothing stays open forever.
- Messages go only through the outbox (`hub.services.outbox`), which retries and keeps
  the dead letters. Everything here takes `now`, so tests move the clock.

Transitions of an incident (state, event → state, message):
    none      observe → open      "opened"
    open      observe → open      —
    open      resolve → resolved  "resolved"
    resolved  observe → open      "opened", or — within quiet_s of the resolve
    resolved  resolve → resolved  —
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import ipaddress
import uuid
from typing import Any

from hub.clock import now_utc
from hub.models import Agent, AlertChannel, AlertRule, Deployment, Incident, IpList, MetricPoint, TopSource
from hub.runtime import Runtime
from hub.services import outbox
from hub.services.background import job
from hub.services.metrics import Total, saturated
from tortoise.functions import Sum


@dataclasses.dataclass(frozen=True)
class Kind:
    title: str
    params: dict[str, int] = dataclasses.field(default_factory=dict)


# Every kind of alert, on by default, with its default parameters.
KINDS: dict[str, Kind] = {
    "agent_offline": Kind("Agent offline", {"minutes": 5}),
    "deployment_failed": Kind("Deployment failed on an agent"),
    "deployment_reverted": Kind("Deployment reverted by an agent (hub not reached in its confirm window)"),
    "deployment_rolled_back": Kind("Deployment rolled back"),
    "drift": Kind("Protections changed outside Bulwark (drift)"),
    "xdp_generic": Kind("Agent fell back to generic XDP"),
    "list_capacity": Kind("IP list near its capacity", {"percent": 90}),
    # over `dropped_pps`, or `jump` times the agent's own rate of the hour before (at least `jump_min_pps`)
    "attack_surge": Kind("Attack surge: dropped packets per second over the threshold or the agent's baseline",
                         {"dropped_pps": 10_000, "jump": 10, "jump_min_pps": 100}),
    # Many dropped addresses of one prefix: suggest it for a deny list, or (auto_add=1) add
    # it to the tenant's deny list ESCALATION_LIST for ttl_s.
    "prefix_escalation": Kind("Many dropped addresses in one prefix", {
        "min_addresses": 16, "prefix_v4": 24, "prefix_v6": 64, "window_s": 300, "ttl_s": 3600, "auto_add": 0}),
    "security": Kind("Security event on the account"),
    "billing": Kind("Billing state changed"),
}

# (state, event) → (new state, message to send); see the module docstring.
TRANSITIONS: dict[tuple[str | None, str], tuple[str, str | None]] = {
    (None, "observe"): ("open", "opened"),
    ("open", "observe"): ("open", None),
    ("open", "resolve"): ("resolved", "resolved"),
    ("resolved", "observe"): ("open", "opened"),  # silent within quiet_s (see observe)
    ("resolved", "resolve"): ("resolved", None),
    (None, "resolve"): ("none", None),
}


@dataclasses.dataclass(frozen=True)
class Setting:
    kind: str
    enabled: bool
    params: dict[str, int]
    quiet_s: int


async def setting(tenant_id: uuid.UUID, kind: str) -> Setting:
    """The tenant's rule for `kind`, or the default one."""
    row = await AlertRule.get_or_none(tenant_id=tenant_id, kind=kind)
    params = dict(KINDS[kind].params)
    if row is None:
        return Setting(kind, True, params, 600)
    params.update({k: v for k, v in row.params.items() if k in params})
    return Setting(kind, row.enabled, params, row.quiet_s)


async def settings_of(tenant_id: uuid.UUID) -> list[Setting]:
    return [await setting(tenant_id, kind) for kind in KINDS]


async def set_rule(tenant_id: uuid.UUID, kind: str, *, enabled: bool, params: dict[str, int],
                   quiet_s: int) -> Setting:
    unknown = set(params) - set(KINDS[kind].params)
    if unknown:
        from hub.errors import InvalidInput

        raise InvalidInput(f"alert {kind} has no parameter {sorted(unknown)[0]!r}",
                           details={"known": sorted(KINDS[kind].params)})
    row, _ = await AlertRule.get_or_create(tenant_id=tenant_id, kind=kind)
    row.enabled, row.params, row.quiet_s = enabled, params, quiet_s
    await row.save()
    return await setting(tenant_id, kind)


async def observe(rt: Runtime, tenant_id: uuid.UUID, kind: str, subject: str, summary: str,
                  details: dict[str, Any] | None = None, *, now: dt.datetime | None = None) -> Incident | None:
    """Something is wrong. Opens (or counts on) the incident. Returns it, or None when the
    tenant turned this kind of alert off."""
    now = now or now_utc()
    rule = await setting(tenant_id, kind)
    if not rule.enabled:
        return None
    incident = await Incident.filter(tenant_id=tenant_id, kind=kind, subject=subject).order_by("-opened_at").first()
    state, message = TRANSITIONS[(incident.state if incident else None, "observe")]
    if incident is None:
        incident = await Incident.create(tenant_id=tenant_id, kind=kind, subject=subject, summary=summary[:500],
                                         details=details or {}, opened_at=now, last_seen_at=now)
    else:
        quiet = (incident.state == "resolved" and incident.resolved_at is not None
                 and (now - incident.resolved_at).total_seconds() < rule.quiet_s)
        if incident.state == "resolved" and not quiet:
            incident = await Incident.create(tenant_id=tenant_id, kind=kind, subject=subject,
                                             summary=summary[:500], details=details or {},
                                             opened_at=now, last_seen_at=now)
        else:
            message = None if quiet else message
            incident.state, incident.resolved_at = state, None
            incident.observations += 1
            incident.last_seen_at = now
            await incident.save()
    if message:
        await _notify(rt, incident, message, now)
    return incident


async def resolve(rt: Runtime, tenant_id: uuid.UUID, kind: str, subject: str, *,
                  now: dt.datetime | None = None) -> Incident | None:
    """It is fine again: resolves the open incident, if any (one message)."""
    now = now or now_utc()
    incident = await Incident.get_or_none(tenant_id=tenant_id, kind=kind, subject=subject, state="open")
    if incident is None:
        return None
    incident.state, _ = TRANSITIONS[("open", "resolve")]
    incident.resolved_at = now
    await incident.save(update_fields=["state", "resolved_at"])
    await _notify(rt, incident, "resolved", now)
    return incident


async def _notify(rt: Runtime, incident: Incident, what: str, now: dt.datetime) -> None:
    title = KINDS[incident.kind].title
    event = {"event": f"alert.{what}", "incident": incident_json(incident), "title": title}
    subject = f"[Bulwark] {'Resolved' if what == 'resolved' else 'Alert'}: {incident.summary}"
    for channel in await AlertChannel.filter(tenant_id=incident.tenant_id, enabled=True):
        await outbox.enqueue(channel, subject, event, now=now)
    await rt.audit.append(actor="hub", action=f"alert.{what}", tenant_id=incident.tenant_id,
                          target=str(incident.id), details={"kind": incident.kind, "subject": incident.subject})


def incident_json(i: Incident) -> dict[str, Any]:
    return {"id": str(i.id), "kind": i.kind, "subject": i.subject, "summary": i.summary, "details": i.details,
            "state": i.state, "observations": i.observations, "opened_at": i.opened_at.isoformat(),
            "last_seen_at": i.last_seen_at.isoformat(),
            "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None}


# ---- what the hub observes ----------------------------------------------------------

async def on_agent_status(rt: Runtime, agent: Agent, *, failed_digest: str | None, errors: list[str],
                          drift: list[str], xdp_mode: str | None, now: dt.datetime | None = None) -> None:
    """An agent's report: failed or reverted deployments, drift, a generic-XDP fallback."""
    subject = str(agent.id)
    name = agent.hostname or subject[:8]
    if failed_digest:
        reverted = any("reverted" in e for e in errors)
        kind = "deployment_reverted" if reverted else "deployment_failed"
        # subject: the Plan, so a canary's failure and the rollout it stops are one incident
        await observe(rt, agent.tenant_id, kind, failed_digest,
                      f"{name}: deployment {failed_digest[:12]} {'reverted' if reverted else 'failed'}",
                      {"agent_id": subject, "digest": failed_digest, "errors": errors[:5]}, now=now)
    # A healthy report is the common case (every agent, often): one query finds what it
    # may resolve, and nothing is written unless something was open.
    calm = {kind for kind, fine in (("drift", not drift), ("xdp_generic", xdp_mode == "native")) if fine}
    open_now = set(await Incident.filter(tenant_id=agent.tenant_id, subject=subject, state="open",
                                         kind__in=sorted(calm)).values_list("kind", flat=True)) if calm else set()
    if drift:
        await observe(rt, agent.tenant_id, "drift", subject, f"{name}: protections changed outside Bulwark",
                      {"agent_id": subject, "drift": drift[:10]}, now=now)
    if xdp_mode == "generic":
        await observe(rt, agent.tenant_id, "xdp_generic", subject, f"{name}: running in generic XDP mode",
                      {"agent_id": subject}, now=now)
    for kind in sorted(open_now):
        await resolve(rt, agent.tenant_id, kind, subject, now=now)


async def notice(rt: Runtime, tenant_id: uuid.UUID, kind: str, subject: str, what: str, *,
                 now: dt.datetime | None = None) -> None:
    """Something that happened rather than a condition that lasts: its own incident,
    opened and resolved at once (one message each way)."""
    await observe(rt, tenant_id, kind, subject, what, now=now)
    await resolve(rt, tenant_id, kind, subject, now=now)


async def security_event(rt: Runtime, tenant_id: uuid.UUID, what: str, subject: str, *,
                         now: dt.datetime | None = None) -> None:
    """A new API token, a 2FA change, a sign-in from a new place."""
    await notice(rt, tenant_id, "security", subject, what, now=now)


async def account_event(rt: Runtime, user_id: uuid.UUID, what: str, subject: str) -> None:
    """A security event of a person's account, told to every tenant they belong to."""
    from hub.models import Membership

    for tenant_id in await Membership.filter(user_id=user_id).values_list("tenant_id", flat=True):
        await security_event(rt, tenant_id, what, f"{subject}:{uuid.uuid4().hex[:8]}")


def place_of(address: str) -> str:
    """Where a sign-in comes from, coarsely: its /24 (IPv4) or /64 (IPv6)."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 64}", strict=False))


async def _settings_for(kind: str) -> dict[uuid.UUID, Setting]:
    """Every tenant's own rule for `kind` (tenants without one get the default)."""
    out = {}
    for row in await AlertRule.filter(kind=kind):
        params = {**KINDS[kind].params, **{k: v for k, v in row.params.items() if k in KINDS[kind].params}}
        out[row.tenant_id] = Setting(kind, row.enabled, params, row.quiet_s)
    return out


async def _open_subjects(kind: str) -> set[tuple[uuid.UUID, str]]:
    return {(i.tenant_id, i.subject) for i in await Incident.filter(kind=kind, state="open")}


@job("alerts.agents", every_s=30)
async def sweep_agents(rt: Runtime, *, now: dt.datetime | None = None) -> None:
    """Agents that stopped calling: a few queries for the whole fleet, and writes only for
    incidents that open or resolve."""
    now = now or now_utc()
    rules, default = await _settings_for("agent_offline"), Setting("agent_offline", True, KINDS["agent_offline"].params, 600)
    open_now = await _open_subjects("agent_offline")
    for agent in await Agent.filter(revoked_at=None, enabled=True).only(
            "id", "tenant_id", "hostname", "last_seen_at", "enrolled_at"):
        rule = rules.get(agent.tenant_id, default)
        seen = agent.last_seen_at or agent.enrolled_at
        subject = str(agent.id)
        if seen is not None and (now - seen).total_seconds() > rule.params["minutes"] * 60:
            if (agent.tenant_id, subject) not in open_now and rule.enabled:
                await observe(rt, agent.tenant_id, "agent_offline", subject,
                              f"{agent.hostname or subject[:8]} has not called the hub for "
                              f"{rule.params['minutes']} min",
                              {"agent_id": subject, "last_seen_at": seen.isoformat()}, now=now)
        elif (agent.tenant_id, subject) in open_now:
            await resolve(rt, agent.tenant_id, "agent_offline", subject, now=now)


@job("alerts.lists", every_s=600)
async def sweep_lists(rt: Runtime, *, now: dt.datetime | None = None) -> None:
    """Lists near the capacity the hub allows (`list_max_entries`)."""
    from hub.models import IpEntry

    now = now or now_utc()
    limit = rt.config.list_max_entries
    rules, default = await _settings_for("list_capacity"), Setting("list_capacity", True, KINDS["list_capacity"].params, 600)
    open_now = await _open_subjects("list_capacity")
    for ip_list in await IpList.all():
        rule = rules.get(ip_list.tenant_id, default)
        subject = str(ip_list.id)
        count = await IpEntry.filter(ip_list_id=ip_list.id, removed_rev=None).count()
        if count * 100 >= limit * rule.params["percent"]:
            if (ip_list.tenant_id, subject) not in open_now:
                await observe(rt, ip_list.tenant_id, "list_capacity", subject,
                              f"list {ip_list.name} holds {count:,} of {limit:,} entries",
                              {"list_id": subject, "entries": count, "capacity": limit}, now=now)
        elif (ip_list.tenant_id, subject) in open_now:
            await resolve(rt, ip_list.tenant_id, "list_capacity", subject, now=now)


def dropping_rules(plan_json: str) -> set[str]:
    """The metric names (`rule<i>`, `default`) of a Plan's XDP rules that drop whatever
    they match: their packets are drops."""
    from rules_dsl.plan import Plan

    plan = Plan.from_json(plan_json)
    names = {f"rule{i}" for i, r in enumerate(plan.xdp.rules) if r.action == "drop"}
    if plan.xdp.default == "drop":
        names.add("default")
    return names


BASELINE_S = 3600  # the hour before the window is an agent's baseline


@job("alerts.surge", every_s="alerts_surge_interval_s")
async def sweep_surges(rt: Runtime, *, now: dt.datetime | None = None) -> None:
    """Agents whose drop rules matched more than `dropped_pps` a second over the last
    `alerts_surge_window_s` open an attack_surge incident; below half of it again, it resolves (so an
    attack hovering at the threshold is one incident)."""
    now = now or now_utc()
    window = rt.config.alerts_surge_window_s
    since = int(now.timestamp()) - window
    rules = await _settings_for("attack_surge")
    default = Setting("attack_surge", True, KINDS["attack_surge"].params, 600)
    open_now = await _open_subjects("attack_surge")
    plans: dict[object, set[str]] = {}
    for agent in await Agent.filter(revoked_at=None, enabled=True).exclude(deployment_id=None).only(
            "id", "tenant_id", "hostname", "deployment_id"):
        if agent.deployment_id not in plans:
            deployment = await Deployment.get(id=agent.deployment_id).only("plan_json")
            plans[agent.deployment_id] = dropping_rules(deployment.plan_json)
        dropping = plans[agent.deployment_id]
        points = await MetricPoint.filter(agent_id=agent.id, ts__gt=since, rule__in=sorted(dropping)).values_list(
            "packets", flat=True) if dropping else []
        pps = sum(points) / window
        rule = rules.get(agent.tenant_id, default)
        subject = str(agent.id)
        limit = rule.params["dropped_pps"]
        if dropping and pps > rule.params["jump_min_pps"]:
            earlier = await MetricPoint.filter(agent_id=agent.id, ts__gt=since - BASELINE_S, ts__lte=since,
                                               rule__in=sorted(dropping)).values_list("packets", flat=True)
            if earlier:  # only an agent with a past has a baseline
                limit = min(limit, max(rule.params["jump_min_pps"], rule.params["jump"] * sum(earlier) / BASELINE_S))
        if pps > limit:
            if (agent.tenant_id, subject) not in open_now:
                await observe(rt, agent.tenant_id, "attack_surge", subject,
                              f"{agent.hostname or subject[:8]} is dropping {pps:,.0f} packets/s",
                              {"agent_id": subject, "dropped_pps": round(pps)}, now=now)
        elif pps < limit / 2 and (agent.tenant_id, subject) in open_now:
            await resolve(rt, agent.tenant_id, "attack_surge", subject, now=now)


ESCALATION_LIST = "escalated"  # the deny list auto_add writes to (created when first needed)


def escalations(sources: list[tuple[str, int]], *, prefix_v4: int, prefix_v6: int,
                min_addresses: int) -> list[tuple[str, int, int]]:
    """Prefixes holding at least `min_addresses` distinct dropped sources: (prefix,
    addresses, packets), most addresses first. Pure."""
    by_prefix: dict[str, tuple[set[str], list[int]]] = collections.defaultdict(lambda: (set(), [0]))
    for source, packets in sources:
        try:
            addr = ipaddress.ip_interface(source).ip  # a host, bare or as /32 and /128
        except ValueError:
            continue
        net = ipaddress.ip_network(f"{addr}/{prefix_v4 if addr.version == 4 else prefix_v6}", strict=False)
        seen, total = by_prefix[str(net)]
        seen.add(str(addr))
        total[0] += packets
    found = [(net, len(seen), total[0]) for net, (seen, total) in by_prefix.items() if len(seen) >= min_addresses]
    return sorted(found, key=lambda x: (-x[1], x[0]))


@job("alerts.prefixes", every_s=60)
async def sweep_prefixes(rt: Runtime, *, now: dt.datetime | None = None) -> None:
    """Per tenant, the dropped sources agents sampled in the window, grouped by prefix."""
    from hub.services import lists

    now = now or now_utc()
    rules = await _settings_for("prefix_escalation")
    default = Setting("prefix_escalation", True, KINDS["prefix_escalation"].params, 600)
    longest = max([default.params["window_s"], *(r.params["window_s"] for r in rules.values())])
    since = int(now.timestamp()) - longest
    per_tenant: dict[uuid.UUID, list[tuple[int, str, int]]] = collections.defaultdict(list)
    # Summed per (tenant, second, source) by the database: every agent samples the same
    # sources each second, and the raw rows (10 a batch) read into Python held the event
    # loop for seconds at 1,000 agents (bench/hub_metrics on PostgreSQL).
    total = Total("packets") if TopSource._meta.db.capabilities.dialect == "sqlite" else Sum("packets")
    for tenant_id, ts, source, packets in await TopSource.filter(ts__gt=since).group_by(
            "tenant_id", "ts", "source").annotate(total=total).values_list("tenant_id", "ts", "source", "total"):
        per_tenant[tenant_id].append((ts, source, saturated(packets)))
    for tenant_id, rows in per_tenant.items():
        rule = rules.get(tenant_id, default)
        if not rule.enabled:
            continue
        p = rule.params
        cutoff = int(now.timestamp()) - p["window_s"]
        found = escalations([(src, n) for ts, src, n in rows if ts > cutoff], prefix_v4=p["prefix_v4"],
                            prefix_v6=p["prefix_v6"], min_addresses=p["min_addresses"])
        for prefix, addresses, packets in found[:20]:
            details = {"prefix": prefix, "addresses": addresses, "packets": packets, "ttl_s": p["ttl_s"]}
            action = f"suggested: deny {prefix} for {p['ttl_s']} s"
            if p["auto_add"]:
                ip_list = await IpList.get_or_none(tenant_id=tenant_id, name=ESCALATION_LIST)
                if ip_list is None:
                    ip_list = await IpList.create(tenant_id=tenant_id, name=ESCALATION_LIST, kind="deny")
                await lists._apply(rt, ip_list, [lists.Entry(prefix, int(now.timestamp()) + p["ttl_s"],
                                                             f"escalated: {addresses} addresses dropped")], [])
                await rt.audit.append(actor="hub", action="list.escalate", tenant_id=tenant_id,
                                      target=str(ip_list.id), details=details)
                action = f"added to deny list {ESCALATION_LIST!r} for {p['ttl_s']} s"
                details["list_id"] = str(ip_list.id)
            await observe(rt, tenant_id, "prefix_escalation", prefix,
                          f"{addresses} addresses of {prefix} dropped in {p['window_s']} s; {action}", details,
                          now=now)
