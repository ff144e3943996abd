"""Policies: every save is a new version, checked and compiled by the hub (rules_dsl).

rules_dsl is imported here and nowhere else in the hub, so the rest of the hub works
(and its tests run) independently of the language package.

The lockout guard: the checker is given the hub's management settings (`hub_addresses`,
`admin_prefixes`, see hub/config.py), so a policy that would drop the hub's replies or
the operators' SSH is saved with an error (unless it says `lockout-guard off`) and
cannot be deployed; `check_deployable` repeats the check at deploy time, as the
settings may have changed since the version was saved, and `check_plan_deployable`
judges the very Plan JSON a deployment (or rollback) sends with the same guard the agents
run (rules_dsl.lockout), and its nftables part against the compiler's allowlist.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hub.config import HubConfig
from hub.errors import Conflict, InvalidInput, Unprocessable
from hub.models import Policy, PolicyVersion
from hub.runtime import Runtime
from hub.services.scope import TenantScope

MAX_SOURCE_CHARS = 256 * 1024
# Checks run here, never on the event loop (a large policy took 30 s and stalled /healthz);
# two at a time so that one tenant's saves cannot occupy every core.
_CHECKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bulwark-policy-check")


def _managements(config: HubConfig | None) -> list[Any]:
    """rules_dsl `Management` values for the configured hub addresses (the DSL checks one
    hub address at a time); [None] when nothing is configured."""
    from rules_dsl import Management

    if config is None or not (config.hub_addresses or config.admin_prefixes):
        return [None]
    hubs: list[str | None] = list(config.hub_addresses) or [None]
    return [Management(hub_address=hub, hub_port=config.hub_tcp_port, ssh_port=config.admin_ssh_port,
                       admin_prefixes=tuple(config.admin_prefixes) if i == 0 else ())
            for i, hub in enumerate(hubs)]


def compile_source(name: str, source: str, config: HubConfig | None = None
                   ) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(diagnostics, plan JSON, plan digest); the plan is None when there are errors,
    including the lockout guard's for `config`'s management addresses."""
    import rules_dsl

    first, *more = _managements(config)
    checked = rules_dsl.load(source, filename=f"{name}.bw", management=first)
    found = list(checked.diagnostics)
    if checked.policy is not None:
        for management in more:
            found += [d for d in rules_dsl.check(checked.policy, management) if d not in found]
    diagnostics = [
        {"severity": d.severity, "line": d.line, "col": d.col, "message": d.message,
         "hint": d.hint, "rendered": d.render()}
        for d in found
    ]
    if checked.plan is None or any(d.severity == "error" for d in found):
        return diagnostics, None, None
    return diagnostics, checked.plan.to_json(), checked.plan.digest


async def compile_bounded(name: str, source: str, config: HubConfig
                          ) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """`compile_source` in a worker thread within `policy_check_timeout_s`; a policy past
    that, or past the checker's work budget, is refused (422) rather than saved."""
    from rules_dsl.check import BUDGET_MESSAGE

    work = asyncio.get_running_loop().run_in_executor(_CHECKS, compile_source, name, source, config)
    try:
        result = await asyncio.wait_for(work, config.policy_check_timeout_s)
    except TimeoutError:
        raise Unprocessable(f"checking this policy took longer than {config.policy_check_timeout_s:g} s: "
                            "use fewer, larger prefixes, or hub lists for large address sets") from None
    over = [d for d in result[0] if d["severity"] == "error" and d["message"].startswith(BUDGET_MESSAGE)]
    if over:
        raise Unprocessable(over[0]["message"], details=over)
    return result


async def check_deployable(config: HubConfig, version: PolicyVersion) -> None:
    """Raises Conflict when the version has errors, now including the lockout guard's
    under the current management settings."""
    if version.plan_json is None or version.plan_digest is None:
        raise Conflict("this policy version has errors and cannot be deployed")
    diagnostics, plan_json, _ = await compile_bounded(f"v{version.version}", version.source, config)
    if plan_json is None:
        errors = [d for d in diagnostics if d["severity"] == "error"]
        raise Conflict(f"policy version {version.version} would lock the operator out: "
                       f"{errors[0]['message'] if errors else 'it no longer checks'}", details=errors)


def check_plan_deployable(config: HubConfig | None, plan_json: str,
                          version: PolicyVersion | None) -> None:
    """Raises Conflict unless the Plan about to go out — the stored JSON, which a rollback
    sends as it was and which is not necessarily what the source compiles to today — has
    an nftables part the compiler can write and passes the lockout guard on both stages
    (rules_dsl.lockout, the agents' own judge) under the current management settings,
    unless its source (`version`) says `lockout-guard off`."""
    import rules_dsl
    from rules_dsl.lockout import judge_lockout
    from rules_dsl.nft_allow import check_nft_document

    try:
        plan = rules_dsl.Plan.from_json(plan_json)
        check_nft_document(plan.nft)
    except rules_dsl.DslError as exc:
        raise Conflict(f"this deployment's Plan is not one the compiler writes: {exc}") from None
    if version is not None and _guard_off(version.source):
        return
    found = [f.render() for m in _managements(config) for f in judge_lockout(plan, m)
             if f.kind == "drop"]
    if found:
        raise Conflict(f"this deployment's Plan would lock the operator out: {found[0]}",
                       details=[{"message": m} for m in dict.fromkeys(found)])


def _guard_off(source: str) -> bool:
    import rules_dsl

    try:
        word = rules_dsl.parse(source).lockout_guard
    except rules_dsl.DslError:
        return False
    return word is not None and word.value == "off"


async def _checked(rt: Runtime, name: str, source: str) -> tuple[list[dict[str, Any]], str | None, str | None]:
    if len(source) > MAX_SOURCE_CHARS:
        raise InvalidInput(f"a policy may have at most {MAX_SOURCE_CHARS} characters")
    return await compile_bounded(name, source, rt.config)


async def _write_version(conn: Any, scope: TenantScope, policy: Policy, source: str,
                         checked: tuple[list[dict[str, Any]], str | None, str | None]) -> PolicyVersion:
    diagnostics, plan_json, digest = checked
    # The version number comes from the row lock of the UPDATE: concurrent saves differ.
    from tortoise.expressions import F

    await Policy.filter(id=policy.id).using_db(conn).update(latest_version=F("latest_version") + 1)
    policy.latest_version = (await Policy.get(id=policy.id).using_db(conn)).latest_version
    return await PolicyVersion.create(
        policy=policy, version=policy.latest_version, source=source, diagnostics=diagnostics,
        error_count=sum(d["severity"] == "error" for d in diagnostics),
        warning_count=sum(d["severity"] == "warning" for d in diagnostics),
        plan_json=plan_json, plan_digest=digest, created_by=scope.actor, using_db=conn,
    )


async def create(rt: Runtime, scope: TenantScope, name: str, source: str) -> tuple[Policy, PolicyVersion]:
    """The policy, its version 1 and the audit entry in one transaction (checked first,
    off the event loop)."""
    from tortoise.transactions import in_transaction

    scope.require("write")
    if await scope.query(Policy).filter(name=name).exists():
        raise Conflict("a policy with this name exists")
    checked = await _checked(rt, name, source)
    async with in_transaction() as conn:
        policy = await Policy.create(tenant_id=scope.tenant_id, name=name, using_db=conn)
        version = await _write_version(conn, scope, policy, source, checked)
        await rt.audit.append(actor=scope.actor, action="policy.create", tenant_id=scope.tenant_id,
                              target=str(policy.id), address=scope.address, details={"name": name},
                              using_db=conn)
    return policy, version


async def save(rt: Runtime, scope: TenantScope, policy: Policy, source: str) -> PolicyVersion:
    from tortoise.transactions import in_transaction

    scope.require("write")
    checked = await _checked(rt, policy.name, source)
    async with in_transaction() as conn:
        version = await _write_version(conn, scope, policy, source, checked)
        await rt.audit.append(actor=scope.actor, action="policy.save", tenant_id=scope.tenant_id,
                              target=str(policy.id), address=scope.address,
                              details={"version": version.version, "errors": version.error_count},
                              using_db=conn)
    return version


def version_json(v: PolicyVersion, *, source: bool = False) -> dict[str, Any]:
    out = {"version": v.version, "errors": v.error_count, "warnings": v.warning_count,
           "diagnostics": v.diagnostics, "plan_digest": v.plan_digest, "created_by": v.created_by,
           "created_at": v.created_at.isoformat() if v.created_at else None}
    if source:
        out["source"] = v.source
    return out


_PROTO_NAMES = {6: "tcp", 17: "udp"}


def describe(source: str) -> tuple[str, list[str]]:
    """`explain` of a checked source and expect lines that pin what it does today: one
    probe per TCP/UDP rule (from the rule's first source prefix and port), decided by the
    reference evaluator, so the lines hold by construction and catch a later edit that
    changes them. ("", []) when the source does not compile."""
    import ipaddress

    import rules_dsl
    from rules_dsl.check import check_resolved
    from rules_dsl.explain import explain

    checked = rules_dsl.load(source)
    if checked.plan is None:
        return "", []
    res, _ = check_resolved(checked.policy, None)
    lines: dict[str, None] = {}
    for r in res.rules:
        proto = next((p for p in sorted(r.proto or {6}) if p in _PROTO_NAMES), None)
        if proto is None:
            continue
        net = r.src.nets[0] if r.src is not None and r.src.nets else ipaddress.ip_network("203.0.113.7/32")
        src = net.network_address if net.num_addresses == 1 else next(iter(net.hosts()), net.network_address)
        dst = ipaddress.ip_address("192.0.2.1" if src.version == 4 else "2001:db8::1")
        dport = r.dport[0][0] if r.dport else 80
        packet = rules_dsl.Packet(l3=f"ipv{src.version}", src=src, dst=dst, proto=proto, sport=40000,
                                  dport=dport, tcp_flags=0x02 if proto == 6 else None, length=64)
        decision, _ = rules_dsl.evaluate(checked.plan, packet, None, 0)
        a, b = (f"[{src}]", f"[{dst}]") if src.version == 6 else (str(src), str(dst))
        flags = " flags syn" if proto == 6 else ""
        lines[f"expect {decision.verdict} {_PROTO_NAMES[proto]} {a}:40000 -> {b}:{dport}{flags}"] = None
    return explain(checked.policy, checked.plan), list(lines)


def replay_capture(candidate: str, capture: bytes, running: str | None = None) -> dict[str, Any]:
    """Every frame of `capture` (pcap/pcapng) through the candidate policy, compared with
    `running` when given: `rules_dsl.replay.as_dict`'s shape. Raises Unprocessable when a
    policy does not compile (its first error named)."""
    import rules_dsl
    from rules_dsl.capture import read_capture
    from rules_dsl.replay import as_dict, replay

    def plan_of(what: str, source: str):
        checked = rules_dsl.load(source, filename=f"{what}.bw")
        if checked.plan is None:
            errors = [d for d in checked.diagnostics if d.severity == "error"]
            raise Unprocessable(f"the {what} policy has errors: {errors[0].message if errors else '?'}",
                                details=[{"line": d.line, "message": d.message} for d in errors[:20]])
        return checked.plan

    plan = plan_of("candidate", candidate)
    against = plan_of("running", running) if running else None
    summary = replay(plan, read_capture(bytes(capture)), against=against)
    return as_dict(summary, plan, top=10, against=against)


async def replay_bounded(config: HubConfig, candidate: str, capture: bytes, running: str | None = None
                         ) -> dict[str, Any]:
    """`replay_capture` on the check workers, within `policy_check_timeout_s` times four."""
    if len(candidate) > MAX_SOURCE_CHARS or len(running or "") > MAX_SOURCE_CHARS:
        raise InvalidInput(f"a policy may have at most {MAX_SOURCE_CHARS} characters")
    if len(capture) > config.replay_max_capture_bytes:
        raise InvalidInput(f"a capture may have at most {config.replay_max_capture_bytes} bytes")
    work = asyncio.get_running_loop().run_in_executor(_CHECKS, replay_capture, candidate, capture, running)
    try:
        return await asyncio.wait_for(work, config.policy_check_timeout_s * 4)
    except TimeoutError:
        raise Unprocessable("replaying this capture took too long: use a shorter capture") from None
