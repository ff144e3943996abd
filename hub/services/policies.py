"""Policies: every save is a new version, checked and compiled by the hub (rules_dsl).

rules_dsl is imported here (and, for templates, in `marketplace`) and nowhere else in the
hub, always inside functions, so the rest of the hub works (and its tests run)
independently of the language package.

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
import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tortoise.exceptions import IntegrityError

from hub.config import HubConfig
from hub.errors import Conflict, InvalidInput, Unprocessable
from hub.models import IpList, Policy, PolicyVersion
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


@dataclasses.dataclass(frozen=True)
class Compiled:
    """What the checker made of a source. `plan_json` is None when there are errors,
    including the lockout guard's. `list_refs` are the hub lists it names, with where.
    `explain` and `expects` (the file's own expect lines run against its Plan) are filled
    only when asked for (`review=True`, the editor's live check) and the source compiles."""
    diagnostics: list[dict[str, Any]]
    plan_json: str | None
    digest: str | None
    list_refs: tuple[tuple[str, int, int], ...] = ()
    explain: str = ""
    expects: tuple[dict[str, Any], ...] = ()


def _diagnostic_json(d: Any) -> dict[str, Any]:
    return {"severity": d.severity, "line": d.line, "col": d.col, "message": d.message,
            "hint": d.hint, "rendered": d.render()}


def keywords() -> tuple[str, ...]:
    """The language's fixed words (rules_dsl's grammar), for the editor's highlighting."""
    from rules_dsl.syntax import keywords as grammar_keywords

    return grammar_keywords()


def compile_source(name: str, source: str, config: HubConfig | None = None, *,
                   review: bool = False) -> Compiled:
    """Check and compile `source` under `config`'s management addresses (pure, CPU-bound:
    call it through `compile_bounded`)."""
    import rules_dsl
    from rules_dsl.nodes import ListRef

    first, *more = _managements(config)
    checked = rules_dsl.load(source, filename=f"{name}.bw", management=first)
    found = list(checked.diagnostics)
    if checked.policy is not None:
        for management in more:
            found += [d for d in rules_dsl.check(checked.policy, management) if d not in found]
    diagnostics = [_diagnostic_json(d) for d in found]
    refs = tuple((item.name, item.pos.line, item.pos.col) for s in
                 (checked.policy.sets if checked.policy is not None else ()) for item in s.items
                 if isinstance(item, ListRef))
    if checked.plan is None or any(d.severity == "error" for d in found):
        return Compiled(diagnostics, None, None, refs)
    explained, outcomes = ("", ()) if not review else _review(checked.policy, checked.plan, first)
    return Compiled(diagnostics, checked.plan.to_json(), checked.plan.digest, refs, explained, outcomes)


def _review(policy: Any, plan: Any, management: Any) -> tuple[str, tuple[dict[str, Any], ...]]:
    from rules_dsl.check import check_resolved
    from rules_dsl.explain import explain
    from rules_dsl.expects import run_expects

    outcomes = run_expects(check_resolved(policy, management)[0], plan)
    return explain(policy, plan), tuple(
        {"line": o.line, "packet": o.packet, "expected": o.expected, "actual": o.actual,
         "passed": o.passed, "rendered": o.render(f"{policy.filename}", plan)} for o in outcomes)


async def compile_bounded(name: str, source: str, config: HubConfig, *, review: bool = False) -> Compiled:
    """`compile_source` in a worker thread within `policy_check_timeout_s`; a policy past
    that, or past the checker's work budget, is refused (422) rather than saved."""
    from rules_dsl.check import BUDGET_MESSAGE

    if len(source) > MAX_SOURCE_CHARS:
        raise InvalidInput(f"a policy may have at most {MAX_SOURCE_CHARS} characters")
    work = asyncio.get_running_loop().run_in_executor(
        _CHECKS, functools.partial(compile_source, name, source, config, review=review))
    try:
        result = await asyncio.wait_for(work, config.policy_check_timeout_s)
    except TimeoutError:
        raise Unprocessable(f"checking this policy took longer than {config.policy_check_timeout_s:g} s: "
                            "use fewer, larger prefixes, or hub lists for large address sets") from None
    over = [d for d in result.diagnostics if d["severity"] == "error" and d["message"].startswith(BUDGET_MESSAGE)]
    if over:
        raise Unprocessable(over[0]["message"], details=over)
    return result


async def checked_in(rt: Runtime, scope: TenantScope, name: str, source: str, *, review: bool = False) -> Compiled:
    """`compile_bounded`, plus a warning at each `list "NAME"` that names no list of the
    tenant (such a set would be deployed empty, silently)."""
    result = await compile_bounded(name, source, rt.config, review=review)
    names = {x.name for x in await scope.query(IpList).filter(name__in=[r[0] for r in result.list_refs])} \
        if result.list_refs else set()
    missing = [{"severity": "warning", "line": line, "col": col,
                "message": f'hub list "{ref}" does not exist in this tenant: the set gets no entries from it',
                "hint": f'create the list "{ref}" (Lists) or fix the name', "rendered": f"{name}.bw:{line}:{col}"}
               for ref, line, col in result.list_refs if ref not in names]
    if not missing:
        return result
    return dataclasses.replace(result, diagnostics=sorted(
        result.diagnostics + missing, key=lambda d: (d["line"], d["col"])))


async def check_deployable(config: HubConfig, version: PolicyVersion) -> None:
    """Raises Conflict when the version has errors, now including the lockout guard's
    under the current management settings."""
    if version.plan_json is None or version.plan_digest is None:
        raise Conflict("this policy version has errors and cannot be deployed")
    result = await compile_bounded(f"v{version.version}", version.source, config)
    if result.plan_json is None:
        errors = [d for d in result.diagnostics if d["severity"] == "error"]
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


async def _write_version(conn: Any, scope: TenantScope, policy: Policy, source: str,
                         checked: Compiled) -> PolicyVersion:
    diagnostics, plan_json, digest = checked.diagnostics, checked.plan_json, checked.digest
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
    off the event loop). Raises Conflict when the name is taken, also by a concurrent create."""
    from tortoise.transactions import in_transaction

    scope.require("write")
    if await scope.query(Policy).filter(name=name).exists():
        raise Conflict("a policy with this name exists")
    checked = await checked_in(rt, scope, name, source)

    try:
        async with in_transaction() as conn:
            policy = await Policy.create(tenant_id=scope.tenant_id, name=name, using_db=conn)
            version = await _write_version(conn, scope, policy, source, checked)
            await rt.audit.append(actor=scope.actor, action="policy.create", tenant_id=scope.tenant_id,
                                  target=str(policy.id), address=scope.address, details={"name": name},
                                  using_db=conn)
    except IntegrityError:  # a concurrent create of the same name won the race past the check
        raise Conflict("a policy with this name exists") from None
    return policy, version


async def save(rt: Runtime, scope: TenantScope, policy: Policy, source: str) -> PolicyVersion:
    from tortoise.transactions import in_transaction

    scope.require("write")
    checked = await checked_in(rt, scope, policy.name, source)
    async with in_transaction() as conn:
        version = await _write_version(conn, scope, policy, source, checked)
        await rt.audit.append(actor=scope.actor, action="policy.save", tenant_id=scope.tenant_id,
                              target=str(policy.id), address=scope.address,
                              details={"version": version.version, "errors": version.error_count},
                              using_db=conn)
    return version


async def rename(rt: Runtime, scope: TenantScope, policy: Policy, name: str) -> Policy:
    from hub.services import naming

    return await naming.rename(rt, scope, policy, name, kind="policy")


async def delete(rt: Runtime, scope: TenantScope, policy: Policy) -> None:
    """The policy and its versions; deployments made from it keep their Plans (and stay
    rollback targets)."""
    from hub.services import naming

    await naming.delete(rt, scope, policy, kind="policy", label=policy.name)


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
