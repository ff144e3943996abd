"""What the agent knows about itself right now, for the status endpoint and Prometheus.

One instance per process, passed to the actors that write it (sampler, reconciler,
supervisor) and read by the http actor. Plain values only; written from trio's thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class Telemetry:
    started_at: float = field(default_factory=time.time)
    applied_digest: str | None = None
    mode: str = "none"
    xdp_mode: str | None = None
    rates: dict[str, dict[str, float]] = field(default_factory=dict)  # rule -> pps/bps/dps
    top_sources: list[tuple[str, int]] = field(default_factory=list)
    traffic: tuple[tuple[str, int, int, int], ...] = ()  # the last interval's drop aggregates
    last_errors: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    repairs: int = 0
    reverts: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    hub: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.m_packets = Gauge("bulwark_rule_packets_per_second", "Packets per second by rule",
                               ["rule"], registry=r)
        self.m_drops = Gauge("bulwark_rule_drops_per_second", "Drops per second by rule", ["rule"],
                             registry=r)
        self.m_bytes = Gauge("bulwark_rule_bytes_per_second", "Bytes per second by rule", ["rule"],
                             registry=r)
        self.m_restarts = Counter("bulwark_actor_restarts", "Actor restarts", ["actor"], registry=r)
        self.m_repairs = Counter("bulwark_drift_repairs", "Drift repairs", registry=r)
        self.m_applied = Gauge("bulwark_plan_applied_timestamp_seconds", "When a Plan was last applied",
                               registry=r)

    def snapshot(self) -> dict[str, Any]:
        return {"applied_digest": self.applied_digest, "mode": self.mode, "xdp_mode": self.xdp_mode,
                "rates": self.rates, "top_sources": [{"source": s, "packets": n} for s, n in self.top_sources],
                "traffic": [{"kind": k, "proto": p, "value": v, "packets": n} for k, p, v, n in self.traffic],
                "errors": self.last_errors, "drift": self.drift, "repairs": self.repairs,
                "reverts": self.reverts, "restarts": self.restarts, "hub": self.hub,
                "uptime_s": round(time.time() - self.started_at, 1)}
