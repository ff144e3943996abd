"""The panel's billing page: state, price, the next invoice's estimate with its proration
preview, invoices, the card through Stripe Checkout and the customer portal.

Card and portal are forms (POST, CSRF-checked) answered with a 303 to the Stripe-hosted
page; this page's CSP therefore lets forms go to Stripe's hosted origins (and to the
origin of `stripe_api_base`, the stand-in a test or a staging hub points at), nowhere else.
What Stripe says is read through hub.services.billing_customer, as the API reads it.
"""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from quart import Response, redirect, render_template, request, url_for

from hub.errors import Unavailable
from hub.headers import CSP
from hub.panel import bp
from hub.panel.pages import _page
from hub.services import billing, billing_customer
from hub.web import rt

STRIPE_PAGES = ("https://checkout.stripe.com", "https://billing.stripe.com")


def page_csp() -> str:
    """The hub's CSP, with forms also allowed to reach Stripe's hosted pages."""
    base = rt().config.stripe_api_base
    extra = [*STRIPE_PAGES] + ([f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"] if base else [])
    return CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(extra))


def _page_url(tenant_id: uuid.UUID) -> str:
    return rt().config.public_url.rstrip("/") + url_for("panel.billing_page", tenant_id=tenant_id)


@bp.get("/t/<uuid:tenant_id>/billing")
async def billing_page(tenant_id: uuid.UUID) -> Response:
    scope, ctx = await _page(tenant_id, "billing")
    summary = await billing.summary(scope.tenant_id)
    estimate = added = None
    invoices: list = []
    stripe_error = None
    if billing.enabled(rt()):
        try:
            estimate = await billing_customer.estimate(rt(), scope.tenant_id)
            if estimate is not None:  # what one more agent now would add, prorated
                preview = await billing_customer.estimate(rt(), scope.tenant_id, summary["quantity"] + 1)
                added = billing.money(preview["proration"] - estimate["proration"], preview["currency"])
            invoices = await billing_customer.invoices(rt(), scope.tenant_id)
        except Unavailable as exc:
            stripe_error = exc.message
    html = await render_template("panel/billing.html", **ctx, b=summary, price=billing.PRICE,
                                 configured=billing.enabled(rt()), estimate=estimate, added=added,
                                 invoices=invoices, stripe_error=stripe_error,
                                 card_saved=request.args.get("card") == "saved")
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = page_csp()
    return response


@bp.post("/t/<uuid:tenant_id>/billing/card")
async def billing_card(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "billing")
    page = _page_url(scope.tenant_id)
    url = await billing_customer.checkout_url(rt(), scope.tenant_id, success_url=page + "?card=saved", cancel_url=page)
    return redirect(url, 303)


@bp.post("/t/<uuid:tenant_id>/billing/portal")
async def billing_portal(tenant_id: uuid.UUID) -> Response:
    scope, _ = await _page(tenant_id, "billing")
    return redirect(await billing_customer.portal_url(rt(), scope.tenant_id, return_url=_page_url(scope.tenant_id)),
                    303)
