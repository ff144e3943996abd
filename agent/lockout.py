"""What the agent will apply: policies compiled with the live management values, and
hub Plans checked against them (the lockout guard).

A policy file is checked by the DSL's own checker with a `Management` built from this
agent's config. A Plan arriving from the hub was checked at the hub, but with the hub's
idea of this server; here it is checked again with the live values, by asking the
DSL's reference evaluator what happens to the hub's replies and to SSH from each
admin prefix. Pure: no I/O.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from agent.config import AgentConfig
from agent.entries import Entries
from agent.errors import PolicyRejected
from rules_dsl import Management, Packet, Plan, evaluate, load

SYN, ACK = 0x02, 0x10
EPHEMERAL = 40000


def management_of(config: AgentConfig) -> Management:
    return Management(hub_address=config.hub_address, hub_port=config.hub_port or 443,
                      ssh_port=config.ssh_port, admin_prefixes=config.admin_prefixes)


def compile_policy(text: str, filename: str, config: AgentConfig) -> Plan:
    """The Plan for a policy file. Raises PolicyRejected with the checker's findings."""
    checked = load(text, filename, management_of(config))
    if not checked.ok:
        errors = tuple(d.render_short() for d in checked.diagnostics if d.severity == "error")
        raise PolicyRejected(f"{filename} does not compile", errors)
    return checked.plan


def _probes(m: Management) -> list[tuple[str, Packet]]:
    probes = []
    if m.hub_address is not None:
        dst = ipaddress.ip_address("192.0.2.1" if m.hub_address.version == 4 else "2001:db8::1")
        for flags in (SYN | ACK, ACK):
            probes.append((f"replies from the hub {m.hub_address}:{m.hub_port}", Packet(
                l3=f"ipv{m.hub_address.version}", src=m.hub_address, dst=dst, proto=6,
                sport=m.hub_port, dport=EPHEMERAL, tcp_flags=flags, length=60, ttl=64)))
    for prefix in m.admin_prefixes:
        src = prefix.network_address + (1 if prefix.num_addresses > 1 else 0)
        dst = ipaddress.ip_address("192.0.2.1" if prefix.version == 4 else "2001:db8::1")
        for flags in (SYN, ACK):
            probes.append((f"SSH from admin prefix {prefix}", Packet(
                l3=f"ipv{prefix.version}", src=src, dst=dst, proto=6, sport=EPHEMERAL,
                dport=m.ssh_port, tcp_flags=flags, length=60, ttl=64)))
    return probes


def check_plan(plan: Plan, lists: Mapping[str, Entries], config: AgentConfig) -> None:
    """Raises PolicyRejected when the Plan would drop the hub's replies or admin SSH."""
    reasons = []
    probes = _probes(management_of(config))
    relevant = _relevant(lists, {p.src for _, p in probes})
    for what, packet in probes:
        decision, _ = evaluate(plan, packet, None, 0, lists=relevant)
        if decision.would_drop:
            rule = "the default" if decision.rule is None else f"rule {decision.rule}"
            reasons.append(f"{rule} would drop {what}")
    if reasons:
        raise PolicyRejected(f"Plan {plan.digest[:12]} would lock this server out",
                             tuple(dict.fromkeys(reasons)))


def _relevant(lists: Mapping[str, Entries], sources: set) -> dict[str, list[str]]:
    """Only what the evaluator needs of each list: the probe sources it covers (a binary
    search per source and prefix length in the packed form, no parse of the list)."""
    return {name: [str(s) for s in sources if s in entries] for name, entries in lists.items()}
