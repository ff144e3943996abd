"""What the agent will apply: policies compiled with the live management values, and
hub Plans checked against them (the lockout guard).

A policy file is checked by the DSL's own checker with a `Management` built from this
agent's config. A Plan arriving from the hub was checked at the hub, but with the hub's
idea of this server and without the lists' contents; here the same guard
(rules_dsl.lockout) judges it again with the live values and lists, after its nftables
document is checked against what the compiler can write (rules_dsl.nft_allow). Pure.
"""
from __future__ import annotations

from collections.abc import Mapping

from agent.config import AgentConfig
from agent.entries import Entries
from agent.errors import PolicyRejected
from rules_dsl import Management, Plan, PlanError, load
from rules_dsl.lockout import judge_lockout
from rules_dsl.nft_allow import check_nft_document


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


def check_plan(plan: Plan, lists: Mapping[str, Entries], config: AgentConfig) -> None:
    """Raises PolicyRejected when the Plan's nftables document is not one the compiler
    could write, or when either stage would drop the hub's replies or admin SSH (the one
    guard, rules_dsl.lockout). CPU-bound for big Plans: callers on the event loop run it
    in a thread."""
    try:
        check_nft_document(plan.nft)
    except PlanError as exc:
        raise PolicyRejected(f"Plan {plan.digest[:12]} has an nftables part the compiler "
                             "cannot produce", tuple(d.message for d in exc.diagnostics)) from None
    # Entries answer `address in entries` by binary search in the packed form.
    found = [f for f in judge_lockout(plan, management_of(config), lists) if f.kind == "drop"]
    if found:
        raise PolicyRejected(f"Plan {plan.digest[:12]} would lock this server out",
                             tuple(dict.fromkeys(f.render() for f in found)))

