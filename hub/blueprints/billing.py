"""Billing: the tenant's state, invoices and next-invoice estimate in the public API (scope
`billing`), the Checkout and portal links, and the endpoint Stripe calls."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request, url_for
from quart_schema import tag_blueprint, validate_querystring

from hub.api_schemas.billing import BillingOut, EstimateOut, EstimateQuery, InvoicesOut, LinkOut, WebhookOut
from hub.api_schemas.common import INPUT_ERRORS, TENANT_ERRORS, raw_request, responds
from hub.errors import NotFound
from hub.services import billing, billing_customer
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("billing", __name__)
tag_blueprint(bp, ["billing"])
BASE = "/api/v1/tenants/<uuid:tenant_id>/billing"
STRIPE_ERRORS = (*TENANT_ERRORS, 503)


@bp.get(BASE)
@responds(BillingOut)
@tenant_route("billing")
async def get_billing(scope: TenantScope) -> dict[str, Any]:
    """Billing state, price, billed agents, trial and period ends, card on file. Scope `billing`."""
    return await billing.summary(scope.tenant_id)


@bp.get(BASE + "/invoices")
@responds(InvoicesOut, errors=STRIPE_ERRORS)
@tenant_route("billing")
async def invoices(scope: TenantScope) -> dict[str, Any]:
    """The tenant's invoices, newest first, with Stripe's hosted page and PDF. Scope `billing`."""
    return {"invoices": await billing_customer.invoices(rt(), scope.tenant_id)}


@bp.get(BASE + "/estimate")
@responds(EstimateOut, errors=(*INPUT_ERRORS, 503))
@tenant_route("billing")
@validate_querystring(EstimateQuery)
async def estimate(scope: TenantScope, query_args: EstimateQuery) -> dict[str, Any]:
    """The next invoice as Stripe previews it, this period's prorations included; with
    `agents`, as if the tenant had that many agents from now (a proration preview).
    Scope `billing`."""
    found = await billing_customer.estimate(rt(), scope.tenant_id, query_args.agents)
    if found is None:
        raise NotFound("subscription (no agent has been billed yet)")
    return found


def _billing_page(scope: TenantScope) -> str:
    return rt().config.public_url.rstrip("/") + url_for("panel.billing_page", tenant_id=scope.tenant_id)


@bp.post(BASE + "/checkout")
@responds(LinkOut, errors=STRIPE_ERRORS)
@tenant_route("billing")
async def checkout(scope: TenantScope) -> dict[str, Any]:
    """A Stripe Checkout page that saves a card (setup mode); back to the billing page.
    Scope `billing`."""
    page = _billing_page(scope)
    return {"url": await billing_customer.checkout_url(rt(), scope.tenant_id, success_url=page + "?card=saved",
                                                       cancel_url=page)}


@bp.post(BASE + "/portal")
@responds(LinkOut, errors=STRIPE_ERRORS)
@tenant_route("billing")
async def portal(scope: TenantScope) -> dict[str, Any]:
    """Stripe's customer portal: cancel at the period's end, invoices, payment. Scope `billing`."""
    return {"url": await billing_customer.portal_url(rt(), scope.tenant_id, return_url=_billing_page(scope))}


@bp.post("/billing/stripe/webhook")
@responds(WebhookOut, errors=(400, 413))
@raw_request("application/json", description="a Stripe event, signed (Stripe-Signature)")
async def stripe_webhook() -> dict[str, Any]:
    """Stripe's events: verified, stored by id, handled once."""
    payload = await request.get_data(as_text=False)
    return await billing.webhook(rt(), payload, request.headers.get("Stripe-Signature"))
