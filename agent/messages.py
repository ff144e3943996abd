"""What actors say to each other over their channels: frozen values, nothing live.

    source (policy file / hub_link) ─Desired─► reconciler ─Apply─► nft.prepare ─► maps ─► loader ─► nft ─Result─► reconciler
    watchdog ─Drift─► reconciler            reconciler ─Report─► hub_link ─Confirmed─► reconciler
    sampler ─MetricsBatch─► hub_link
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.state import Desired


@dataclass(frozen=True)
class Apply:
    """One desired state travelling the pipeline; each stage adds what it did or why not."""
    desired: Desired
    serial: int = 0
    repair: frozenset[str] = frozenset()  # parts to rewrite from scratch ("maps", "program", "nft")
    done: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def did(self, what: str) -> "Apply":
        return replace(self, done=(*self.done, what))

    def failed(self, part: str, error: BaseException | str) -> "Apply":
        return replace(self, errors=(*self.errors, f"{part}: {error}"))

    def program_state(self) -> str | None:
        """What the loader left: "native" or "generic" (attached), "detached" or "absent";
        None when the loader did not run on this state."""
        return next((what.partition(":")[2] for what in self.done if what.startswith("program:")), None)


@dataclass(frozen=True)
class Result:
    apply: Apply


@dataclass(frozen=True)
class Drift:
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Confirmed:
    digest: str | None


@dataclass(frozen=True)
class Report:
    """The agent's state, for the hub: what is applied, what failed and why."""
    applied_digest: str | None
    mode: str
    failed_digest: str | None = None
    errors: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    list_revisions: tuple[tuple[str, int], ...] = ()
    xdp_mode: str | None = None  # how the program is attached now (native/generic), None if not


@dataclass(frozen=True)
class MetricsBatch:
    ts: int
    interval_s: float
    points: tuple[tuple[str, int, int], ...]  # (rule, packets, bytes) in this interval
    top_sources: tuple[tuple[str, int], ...] = field(default=())
    traffic: tuple[tuple[str, int, int, int], ...] = field(default=())  # rules_dsl.traffic rows of the drops
