"""What the panel shows about an agent, computed from what the services store (pure).

Metrics arrive per counter slot ("rule0", "rule1", ..., "default", "malformed"); whether a
slot passes or drops is in the Plan the agent was sent, so the verdict map is read from
that Plan and nothing else.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("pass", "drop", "limit")


def verdicts(plan_json: str | None) -> dict[str, dict[str, str]]:
    """Counter slot name → {"action", "text"} for a Plan's JSON ({} without a Plan)."""
    if not plan_json:
        return {}
    xdp = json.loads(plan_json).get("xdp", {})
    out = {f"rule{i}": {"action": r.get("action", "pass"), "text": r.get("text", "")}
           for i, r in enumerate(xdp.get("rules", []))}
    out["default"] = {"action": xdp.get("default", "pass"), "text": "default verdict"}
    out["malformed"] = {"action": xdp.get("malformed", "drop"), "text": "malformed packets"}
    return out


@dataclass
class Totals:
    """Packets and bytes by verdict, and per slot, over a window of points."""

    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    by_rule: dict[str, list[int]] = field(default_factory=dict)  # slot -> [packets, bytes]


def totals(points: list[dict[str, Any]], verdict_map: dict[str, dict[str, str]]) -> Totals:
    out = Totals()
    for p in points:
        action = verdict_map.get(p["rule"], {}).get("action", "pass")
        out.packets[action] = out.packets.get(action, 0) + p["packets"]
        out.bytes[action] = out.bytes.get(action, 0) + p["bytes"]
        slot = out.by_rule.setdefault(p["rule"], [0, 0])
        slot[0] += p["packets"]
        slot[1] += p["bytes"]
    return out


def online(last_seen: dt.datetime | None, window_s: int, now: dt.datetime) -> bool:
    """Seen within the hub's connected window (the same window as the connected gauge)."""
    return last_seen is not None and (now - last_seen).total_seconds() <= window_s


def drift_state(desired_digest: str | None, applied_digest: str | None) -> str:
    """"none" (nothing deployed), "in sync" or "pending" (applied differs from desired)."""
    if desired_digest is None:
        return "none"
    return "in sync" if desired_digest == applied_digest else "pending"


def human(n: float) -> str:
    """1234567 → "1.2M": counters stay readable in narrow columns."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def series(points: list[dict[str, Any]], verdict_map: dict[str, dict[str, str]],
           keep: int = 120) -> list[list[float]]:
    """[[ts, passed pps, dropped pps], ...], oldest first: the sparkline's starting data
    (the live stream then appends rates of the same shape)."""
    by_ts: dict[int, list[float]] = {}
    for p in points:
        row = by_ts.setdefault(p["ts"], [0.0, 0.0])
        row[verdict_map.get(p["rule"], {}).get("action") == "drop"] += p["packets"]
    out, prev = [], None
    for ts in sorted(by_ts):
        gap = max(1, ts - prev) if prev is not None else 1
        out.append([ts, by_ts[ts][0] / gap, by_ts[ts][1] / gap])
        prev = ts
    return out[-keep:]


@dataclass(frozen=True)
class Banner:
    """The billing notice every panel page of a tenant shows (`level`: info, warn, bad)."""

    level: str
    title: str
    text: str


def _day(t: dt.datetime | None) -> str:
    return t.strftime("%d %b %Y") if t else "soon"


def billing_banner(billing: dict[str, Any], price: str, now: dt.datetime) -> Banner | None:
    """From `hub.services.billing.summary`: trial end, past_due, restricted, suspended,
    a cancellation at period end; None when there is nothing to say."""
    state = billing["state"]
    if state == "trialing":
        end = billing["trial_end"]
        if billing["card"]:
            return Banner("info", "Free trial", f"Your free trial ends on {_day(end)}; then {price} per agent per "
                                                f"month, charged to {billing['card']}.")
        soon = end is not None and end - now <= dt.timedelta(days=3)
        return Banner("warn" if soon else "info", "Free trial",
                      f"Your free trial ends on {_day(end)}. Add a card before then to keep your protections on.")
    if state == "past_due":
        return Banner("warn", "Payment failed",
                      f"The last payment failed on {_day(billing['past_due_since'])}. New agents and deployments "
                      f"pause on {_day(billing['restricted_at'])}, and protections are suspended on "
                      f"{_day(billing['suspended_at'])}, unless the invoice is paid.")
    if state == "restricted":
        return Banner("bad", "Billing restricted",
                      f"An invoice is unpaid: no new agents or deployments until it is paid. Protections stay on "
                      f"until {_day(billing['suspended_at'])}, when they are suspended.")
    if state == "suspended":
        return Banner("bad", "Protections suspended",
                      "An invoice is unpaid: every agent has removed its program and table, so nothing is filtered. "
                      "Pay the invoice to restore the last deployment on every agent.")
    if billing["cancel_at"] and state in ("active", "past_due"):
        return Banner("info", "Subscription cancelled",
                      f"The subscription ends on {_day(billing['cancel_at'])}, at the end of the period (no refund).")
    return None
