"""Billing: the tenant's state and price, and Stripe's webhook acknowledgement."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from hub.api_schemas.common import Strict


class BillingOut(Strict):
    state: Literal["none", "trialing", "active", "past_due", "restricted", "suspended", "canceled"]
    price: str = Field(description='"3.00 EUR excl. tax per agent per month"')
    unit_amount: int = Field(description="per agent per month, in cents of `currency`, excluding tax")
    currency: str
    quantity: int = Field(description="agents billed: enrolled, enabled and not revoked")
    trial_used: bool = Field(description="the 7-day trial is granted once per tenant, with its first agent")
    past_due_since: dt.datetime | None = Field(description="restricted 3 days after, suspended 7 days after")
    allows: dict[str, bool] = Field(description="new_agents, deploy, protect: what this state allows")


class WebhookOut(Strict):
    received: bool
    duplicate: bool = False
