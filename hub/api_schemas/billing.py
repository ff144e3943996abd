"""Billing: the tenant's state and price, its invoices, the next invoice's estimate with
its proration preview, the Checkout and portal links, and Stripe's webhook acknowledgement.
Amounts are Stripe's: cents of `currency`, excluding tax."""
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
    restricted_at: dt.datetime | None = Field(description="past_due_since + 3 days: no new agents or deployments")
    suspended_at: dt.datetime | None = Field(description="past_due_since + 7 days: every agent deactivates")
    trial_end: dt.datetime | None = Field(description="while trialing: when the first invoice is made")
    period_end: dt.datetime | None = Field(description="the end of the current period (the next invoice)")
    cancel_at: dt.datetime | None = Field(description="cancelled in the portal: the subscription ends then")
    card: str | None = Field(description='the card saved through Checkout, e.g. "visa •••• 4242"')
    allows: dict[str, bool] = Field(description="new_agents, deploy, protect: what this state allows")


class LineOut(Strict):
    description: str
    amount: int = Field(description="cents, excluding tax; a credit is negative")
    amount_text: str
    quantity: int | None
    proration: bool = Field(description="a prorated credit or charge for a change within the period")
    period_start: dt.datetime | None
    period_end: dt.datetime | None


class EstimateOut(Strict):
    agents: int = Field(description="the quantity this estimate assumes")
    currency: str
    subtotal: int
    total_excluding_tax: int
    total_excluding_tax_text: str = Field(description='e.g. "6.00 EUR excl. tax"')
    proration: int = Field(description="the sum of the proration lines, in cents")
    proration_text: str
    billed_at: dt.datetime | None = Field(description="when the next invoice is made (the period's end)")
    lines: list[LineOut]


class EstimateQuery(Strict):
    agents: int | None = Field(default=None, ge=0, le=100_000,
                               description="preview the next invoice as if the tenant had this many agents from now")


class InvoiceOut(Strict):
    id: str
    number: str | None
    created: dt.datetime | None
    status: str | None
    total: int
    total_text: str
    currency: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None


class InvoicesOut(Strict):
    invoices: list[InvoiceOut]


class LinkOut(Strict):
    url: str = Field(description="a Stripe-hosted page to send the person to")


class WebhookOut(Strict):
    received: bool
    duplicate: bool = False
