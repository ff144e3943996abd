"""Billing: the tenant's state in the public API, and the endpoint Stripe calls."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import tag_blueprint

from hub.api_schemas.billing import BillingOut, WebhookOut
from hub.api_schemas.common import raw_request, responds
from hub.services import billing
from hub.services.scope import TenantScope
from hub.web import rt, tenant_route

bp = Blueprint("billing", __name__)
tag_blueprint(bp, ["billing"])


@bp.get("/api/v1/tenants/<uuid:tenant_id>/billing")
@responds(BillingOut)
@tenant_route("billing")
async def get_billing(scope: TenantScope) -> dict[str, Any]:
    """Billing state, price and billed agents."""
    return await billing.summary(scope.tenant_id)


@bp.post("/billing/stripe/webhook")
@responds(WebhookOut, errors=(400, 413))
@raw_request("application/json", description="a Stripe event, signed (Stripe-Signature)")
async def stripe_webhook() -> dict[str, Any]:
    """Stripe's events: verified, stored by id, handled once."""
    payload = await request.get_data(as_text=False)
    return await billing.webhook(rt(), payload, request.headers.get("Stripe-Signature"))
