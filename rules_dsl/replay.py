"""A capture through the reference evaluator (`bulwark rules replay`): the tally.

    replay(plan, records, lists=..., against=None, against_lists=...) -> Summary

Pure: `records` is any iterable of capture Records (`capture.read_capture`); each frame's
timestamp is the evaluator's clock, so rate limits see the capture's own pace. A
`CaptureError` raised while iterating ends the replay with what was read so far and the
error in `Summary.error`. Memory is bounded whatever the capture: distinct sources are
counted up to MAX_SOURCES (later new ones go to `other_sources`), differing frames are
kept up to MAX_DIFFS (all are counted).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .capture import ethernet_frame
from .errors import CaptureError
from .evaluate import State, evaluate
from .packet import Packet, parse_frame
from .plan import Plan
from .vocab import PROTOCOL_NAMES

MAX_SOURCES = 100_000
MAX_DIFFS = 20


class _LiveState(State):
    """A replay never looks back at an old state, so buckets are updated in place: one dict
    write per charged bucket instead of a copy of every bucket (quadratic in sources)."""

    __slots__ = ()

    def with_bucket(self, key, bucket) -> State:
        self._d[key] = bucket
        self._hash = None
        return self


@dataclass(frozen=True)
class Difference:
    frame: int              # 1-based, in capture order
    ts_ns: int
    packet: Packet
    candidate: str          # verdict of the policy replayed
    running: str            # verdict of the --against policy

    def five_tuple(self) -> str:
        p = self.packet
        if p.l3 is None:
            return "non-IP"
        if p.src is None:
            return f"malformed {p.l3}"
        proto = PROTOCOL_NAMES.get(p.proto, str(p.proto))

        def end(a, port):
            a = f"[{a}]" if a.version == 6 and port is not None else str(a)
            return a if port is None else f"{a}:{port}"
        return f"{proto} {end(p.src, p.sport)} -> {end(p.dst, p.dport)}"


@dataclass
class Summary:
    frames: int = 0
    verdicts: Counter = field(default_factory=Counter)        # pass / drop (as deployed)
    would_drop: int = 0                                         # differs from drop in monitor mode
    rules: list[Counter] = field(default_factory=list)         # per rule: pass / drop
    default: Counter = field(default_factory=Counter)
    non_ip: int = 0
    malformed: int = 0
    dropped_sources: Counter = field(default_factory=Counter)
    other_sources: int = 0      # drops from sources past MAX_SOURCES distinct
    differing: int = 0
    differences: list[Difference] = field(default_factory=list)
    error: CaptureError | None = None
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None

    def top_sources(self, n: int) -> list[tuple[str, int]]:
        return [(str(a), c) for a, c in self.dropped_sources.most_common(n)]


def replay(plan: Plan, records: Iterable, *, lists: Mapping | None = None,
           against: Plan | None = None, against_lists: Mapping | None = None) -> Summary:
    s = Summary(rules=[Counter() for _ in plan.xdp.rules])
    state, other = _LiveState(), _LiveState()
    try:
        for rec in records:
            s.frames += 1
            s.first_ts_ns = rec.ts_ns if s.first_ts_ns is None else s.first_ts_ns
            s.last_ts_ns = rec.ts_ns
            p = parse_frame(ethernet_frame(rec.link_type, rec.data))
            d, state = evaluate(plan, p, state, rec.ts_ns, lists=lists)
            _count(s, p, d)
            if against is not None:
                a, other = evaluate(against, p, other, rec.ts_ns, lists=against_lists)
                if a.verdict != d.verdict:
                    s.differing += 1
                    if len(s.differences) < MAX_DIFFS:
                        s.differences.append(Difference(s.frames, rec.ts_ns, p, d.verdict,
                                                        a.verdict))
    except CaptureError as exc:
        s.error = exc
    return s


def _count(s: Summary, p: Packet, d) -> None:
    s.verdicts[d.verdict] += 1
    s.would_drop += d.would_drop
    if d.reason == "non-ip":
        s.non_ip += 1
    elif d.reason == "malformed":
        s.malformed += 1
    elif d.rule is not None:
        s.rules[d.rule][d.verdict] += 1
    else:
        s.default[d.verdict] += 1
    if d.would_drop and p.src is not None:
        if p.src in s.dropped_sources or len(s.dropped_sources) < MAX_SOURCES:
            s.dropped_sources[p.src] += 1
        else:
            s.other_sources += 1


def _ts(ts_ns: int) -> str:
    return f"{ts_ns // 10**9}.{ts_ns % 10**9:09d}"


def as_dict(s: Summary, plan: Plan, *, top: int = 10, against: Plan | None = None) -> dict:
    """The JSON shape of `bulwark rules replay --json` (docs/dsl.md)."""
    def pd(c):
        return {"pass": c["pass"], "drop": c["drop"]}
    out = {
        "policy": plan.name, "mode": plan.xdp.mode, "frames": s.frames,
        "first_ts_ns": s.first_ts_ns, "last_ts_ns": s.last_ts_ns,
        "verdicts": pd(s.verdicts), "would_drop": s.would_drop,
        "non_ip": s.non_ip, "malformed": s.malformed,
        "rules": [{"rule": i, "text": r.text, **pd(c)}
                  for i, (r, c) in enumerate(zip(plan.xdp.rules, s.rules), 1)],
        "default": pd(s.default),
        "top_dropped_sources": [{"src": a, "drops": n} for a, n in s.top_sources(top)],
        "other_dropped_sources": s.other_sources,
        "against": None,
        "error": None if s.error is None else {"offset": s.error.offset,
                                               "message": s.error.message},
    }
    if against is not None:
        out["against"] = {"policy": against.name, "differing": s.differing, "frames": [
            {"frame": d.frame, "ts_ns": d.ts_ns, "l3": d.packet.l3,
             "proto": d.packet.proto, "src": _s(d.packet.src), "sport": d.packet.sport,
             "dst": _s(d.packet.dst), "dport": d.packet.dport,
             "candidate": d.candidate, "running": d.running} for d in s.differences]}
    return out


def _s(a) -> str | None:
    return None if a is None else str(a)


def render_text(s: Summary, plan: Plan, *, top: int = 10, against: Plan | None = None) -> str:
    mon = plan.xdp.mode == "monitor"
    lines = [f"Policy '{plan.name}'{' (monitor mode)' if mon else ''}: {s.frames} frame(s), "
             f"{s.verdicts['pass']} passed, {s.verdicts['drop']} dropped"
             + (f", {s.would_drop} would be dropped in enforce mode" if mon else "") + "."]
    if s.frames:
        lines.append(f"Capture time {_ts(s.first_ts_ns)} .. {_ts(s.last_ts_ns)} "
                     f"({(s.last_ts_ns - s.first_ts_ns) / 1e9:.3f} s).")
    lines.append(f"Not IP: {s.non_ip} (always pass). Malformed: {s.malformed} "
                 f"({plan.xdp.malformed}).")
    lines.append("Per rule (pass / drop):")
    for i, (r, c) in enumerate(zip(plan.xdp.rules, s.rules), 1):
        lines.append(f"  {i}. {c['pass']:>8} / {c['drop']:<8}  [{r.text}]")
    lines.append(f"  default {s.default['pass']} / {s.default['drop']}  [default {plan.xdp.default}]")
    srcs = s.top_sources(top)
    if srcs:
        lines.append(f"Top dropped sources ({'would-be drops' if mon else 'drops'}):")
        lines += [f"  {n:>8}  {a}" for a, n in srcs]
        if s.other_sources:
            lines.append(f"  {s.other_sources:>8}  (from sources past the first {MAX_SOURCES})")
    if against is not None:
        lines.append(f"Against '{against.name}': {s.differing} frame(s) get a different verdict"
                     + (f" (first {len(s.differences)}):" if s.differences else "."))
        for d in s.differences:
            lines.append(f"  #{d.frame} {_ts(d.ts_ns)} {d.five_tuple()}: "
                         f"{d.candidate} here, {d.running} running")
    if s.error is not None:
        lines.append(f"Stopped after frame {s.frames}: {s.error}")
    return "\n".join(lines) + "\n"
