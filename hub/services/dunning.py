"""A tenant's billing state, as a table the code runs. Pure: no I/O, no clock of its own.

Invariants:
- Only the table moves a state; an event with no row for the current state changes
  nothing (a late or repeated event cannot move a tenant backwards).
- `past_due_since` is set when payment first fails and cleared by a payment: D+3 and D+7
  count from it, whatever happens in between (a second failed attempt restarts nothing).
- restricted (D+3): no new agents, no new deployments; reads and protections stay.
- suspended (D+7): every agent is told to deactivate; paying restores everything.
- canceled is final for the subscription (a new one starts over from `none`).

    state       event            → state
    none        trial_started    → trialing
    none        paid             → active
    trialing    paid             → active
    trialing    payment_failed   → past_due     (a trial that ended without a card, too)
    active      payment_failed   → past_due
    past_due    paid             → active
    past_due    day3             → restricted
    past_due    day7             → suspended
    restricted  paid             → active
    restricted  day7             → suspended
    suspended   paid             → active
    any but none, canceled: canceled → canceled;   canceled trial_started/paid → as none
"""
from __future__ import annotations

import datetime as dt

STATES = ("none", "trialing", "active", "past_due", "restricted", "suspended", "canceled")
EVENTS = ("trial_started", "paid", "payment_failed", "day3", "day7", "canceled")

TRANSITIONS: dict[tuple[str, str], str] = {
    ("none", "trial_started"): "trialing",
    ("none", "paid"): "active",
    ("trialing", "paid"): "active",
    ("trialing", "payment_failed"): "past_due",
    ("active", "payment_failed"): "past_due",
    ("past_due", "paid"): "active",
    ("past_due", "day3"): "restricted",
    ("past_due", "day7"): "suspended",
    ("restricted", "paid"): "active",
    ("restricted", "day7"): "suspended",
    ("suspended", "paid"): "active",
    ("canceled", "trial_started"): "trialing",
    ("canceled", "paid"): "active",
    **{(state, "canceled"): "canceled" for state in STATES if state not in ("none", "canceled")},
}

RESTRICTED_AT = dt.timedelta(days=3)
SUSPENDED_AT = dt.timedelta(days=7)

# What each state allows. `protect`: agents enforce their Plans.
ALLOWS: dict[str, dict[str, bool]] = {
    "none": {"new_agents": True, "deploy": True, "protect": True},
    "trialing": {"new_agents": True, "deploy": True, "protect": True},
    "active": {"new_agents": True, "deploy": True, "protect": True},
    "past_due": {"new_agents": True, "deploy": True, "protect": True},
    "restricted": {"new_agents": False, "deploy": False, "protect": True},
    "suspended": {"new_agents": False, "deploy": False, "protect": False},
    "canceled": {"new_agents": True, "deploy": True, "protect": True},
}


def step(state: str, event: str) -> str:
    """The state after `event`; the same state when the table has no row for it."""
    if state not in STATES or event not in EVENTS:
        raise ValueError(f"unknown billing state or event: {state!r}, {event!r}")
    return TRANSITIONS.get((state, event), state)


def event_of_subscription(status: str) -> str | None:
    """A Stripe subscription status as an event of the table."""
    return {"trialing": "trial_started", "active": "paid", "past_due": "payment_failed",
            "unpaid": "payment_failed", "incomplete": "payment_failed",
            "incomplete_expired": "canceled", "canceled": "canceled"}.get(status)


def clock_events(past_due_since: dt.datetime | None, now: dt.datetime) -> list[str]:
    """The day events due by `now` for a tenant unpaid since `past_due_since`."""
    if past_due_since is None:
        return []
    late = now - past_due_since
    return [event for event, after in (("day3", RESTRICTED_AT), ("day7", SUSPENDED_AT)) if late >= after]
