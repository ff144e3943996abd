"""What an agent enforces, read from the kernel: per-rule counters from its pins, named by
the rules of the Plan it applied (its state directory). No daemon needed."""
from __future__ import annotations

from dataclasses import dataclass

from agent.config import AgentConfig
from agent.dataplane import read_pinned
from agent.errors import AgentError
from agent.state import StateStore
from bpf.guard_tables import RULE_DEFAULT, RULE_MALFORMED


@dataclass(frozen=True)
class RuleCount:
    slot: int
    text: str
    packets: int
    dropped: int

    @property
    def passed(self) -> int:
        return self.packets - self.dropped


@dataclass(frozen=True)
class Enforced:
    digest: str | None = None
    xdp_mode: str | None = None          # None: no program attached
    rules: tuple[RuleCount, ...] = ()


def enforced(config: AgentConfig) -> Enforced:
    """The applied digest, the XDP mode and the live generation's counters by rule;
    Enforced() before the first apply. Counters start from zero when a Plan is flipped in."""
    try:
        applied = StateStore(config.state_dir).load()
        pinned = read_pinned(config)
    except (AgentError, OSError):
        return Enforced()
    if applied is None or applied.plan is None:
        return Enforced()
    xdp = applied.plan.xdp
    names = {RULE_DEFAULT: f"default {xdp.default}", RULE_MALFORMED: f"malformed {xdp.malformed}"}
    names.update((i, r.text) for i, r in enumerate(xdp.rules))
    rules = tuple(RuleCount(slot, names.get(slot, f"rule {slot}"), c["packets"], c["dropped"])
                  for slot, c in sorted(pinned["counters"].items()))
    return Enforced(applied.digest, pinned["xdp_mode"] if pinned["attached"] else None, rules)


def by_text(counts: tuple[RuleCount, ...]) -> dict[str, RuleCount]:
    return {c.text: c for c in counts}
