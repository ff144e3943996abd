"""The sampler actor: every `sample_interval_s` reads the per-CPU counters (summed by the
guard), turns differences into rates, drains the drop samples into the top dropped
sources and the drop aggregates (rules_dsl.traffic: protocols, destination ports, sizes;
the same samples, so the same per-CPU budget), publishes them (telemetry, Prometheus) and offers a batch to the hub link.
Top sources shown locally cover `top_window_s`; the hub gets each interval's own.
The hub link keeps a bounded buffer; a batch it has no room for is dropped and counted,
never waited for: sampling must not stall behind a missing hub."""
from __future__ import annotations

import collections
import ipaddress
import time

import trio

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import MetricsBatch
from agent.telemetry import Telemetry
from bpf.guard_tables import RULE_DEFAULT, RULE_MALFORMED
from rules_dsl import traffic


def rule_name(slot: int) -> str:
    return {RULE_DEFAULT: "default", RULE_MALFORMED: "malformed"}.get(slot, f"rule{slot}")


def source_of(sample) -> str:
    raw = bytes(sample.src)
    # guard.h: family 0 is IPv4 (address in the first 4 bytes), 1 is IPv6
    return str(ipaddress.IPv4Address(raw[:4]) if sample.family == 0 else ipaddress.IPv6Address(raw))


def rates(prev: dict, now: dict, dt: float) -> dict[str, dict[str, float]]:
    """Per-rule rates between two counter readings (a counter that went down — a new Plan's
    generation — counts from zero)."""
    out = {}
    for slot, c in now.items():
        p = prev.get(slot)
        dp = c.packets - (p.packets if p and p.packets <= c.packets else 0)
        db = c.bytes - (p.bytes if p and p.bytes <= c.bytes else 0)
        dd = c.dropped - (p.dropped if p and p.dropped <= c.dropped else 0)
        out[rule_name(slot)] = {"pps": dp / dt, "bps": db * 8 / dt, "dps": dd / dt,
                                "packets": dp, "bytes": db}
    return out


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane, telemetry: Telemetry,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with inbox, outbox:
        task_status.started()
        prev, prev_t = {}, trio.current_time()
        dropped_batches = 0
        window: collections.deque[tuple[float, collections.Counter]] = collections.deque()
        while True:
            await trio.sleep(config.sample_interval_s)

            def read():
                with dataplane.lock:
                    if dataplane.maps_desired is None:
                        return None, []
                    return dataplane.counters(), dataplane.drain_samples()
            try:
                counters, samples = await trio.to_thread.run_sync(read)
            except AgentError as exc:
                telemetry.last_errors = [f"sampler: {exc}"]
                continue
            if counters is None:
                continue
            now_t = trio.current_time()
            dt = max(now_t - prev_t, 1e-6)
            r = rates(prev, counters, dt)
            prev, prev_t = counters, now_t
            fresh = collections.Counter(source_of(s) for s in samples)
            aggregates = tuple(traffic.aggregate((s.proto, s.dport, s.length) for s in samples))
            window.append((now_t, fresh))
            while window and window[0][0] < now_t - config.top_window_s:
                window.popleft()
            total: collections.Counter = collections.Counter()
            for _, c in window:
                total.update(c)
            top = fresh.most_common(config.top_sources)  # for the hub: this interval's
            telemetry.rates, telemetry.top_sources = r, total.most_common(config.top_sources)
            telemetry.traffic = aggregates
            for rule, v in r.items():
                telemetry.m_packets.labels(rule).set(v["pps"])
                telemetry.m_bytes.labels(rule).set(v["bps"])
                telemetry.m_drops.labels(rule).set(v["dps"])
            batch = MetricsBatch(int(time.time()), dt, tuple((k, v["packets"], v["bytes"]) for k, v in r.items()),
                                 tuple(top), aggregates)
            try:
                outbox.send_nowait(batch)
            except trio.WouldBlock:
                dropped_batches += 1
                telemetry.hub["dropped_batches"] = dropped_batches
