"""A small stateful fake of exactly the Stripe endpoints the hub uses, served on loopback,
that the real `stripe` library talks to (StripeClient's `base_addresses`).

Every object it answers with is Stripe's own example of that resource
(`../shared/stripe/fixtures3.json`) with our values written over it, so its keys are
Stripe's keys (tests/hub/test_billing.py walks them). Idempotency keys are honoured as
Stripe honours them: the same key answers the first call's answer again, and the same key
with other parameters is an `idempotency_error`.

Money follows Stripe's rules for a licensed monthly price: a quantity change mid-period
leaves two pending proration items, a credit for the unused time on the old quantity and
a charge for the remaining time on the new one, each `unit × quantity × (period end −
change) / (period end − period start)` to the second, rounded to the cent; the next
invoice is those items plus the next period at the new quantity. The fake's clock
(`now`) is frozen when a test sets it, as a Stripe test clock is.

Test hooks: `set_status(sub_id, status)`, `start_period(sub_id, at, status)` (a trial
ends or a month turns: the pending items and the period are invoiced), `complete_checkout`
(the customer typed a card), `portal_cancel` (the customer cancelled in the portal),
`fail_once(path)` (the change is made but its answer is lost: the library retries), and
`event(type, obj)` builds a webhook delivery signed like Stripe signs it.
"""
from __future__ import annotations

import calendar
import copy
import datetime as dt
import itertools
import json
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.loopback import LoopbackServer, QuietHandler

FIXTURES = json.loads((Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json")
                      .read_text())["resources"]
_ids = itertools.count(1)


def fixture(resource: str) -> dict[str, Any]:
    return copy.deepcopy(FIXTURES[resource])


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`items[0][price]=...`) back into dicts and lists."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part, nxt in zip(parts, parts[1:]):
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(out)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def add_month(ts: int) -> int:
    """One monthly period on from `ts`, as Stripe counts it (the same day next month, or
    the month's last day)."""
    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    day = min(t.day, calendar.monthrange(year, month)[1])
    return int(t.replace(year=year, month=month, day=day).timestamp())


def prorated(amount: int, start: int, end: int, at: int) -> int:
    """`amount` for the part of [start, end) left at `at`, to the second, to the cent."""
    return int((Decimal(amount) * (end - at) / (end - start)).quantize(Decimal(1), ROUND_HALF_UP))


def _error(status: int, message: str, type_: str = "invalid_request_error") -> tuple[int, dict]:
    return status, {"error": {"type": type_, "message": message}}


class StripeFake(LoopbackServer):
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, dict[str, Any], str | None]] = []  # method, path, params, idempotency key
        self.pending: dict[str, list[dict[str, Any]]] = {}  # customer -> proration items not yet invoiced
        self.frozen: int | None = None
        self._idempotent: dict[str, tuple[dict[str, Any], tuple[int, dict[str, Any]]]] = {}
        self._fail: set[str] = set()
        self._lock = threading.RLock()
        fake = self

        class Handler(QuietHandler):
            def _answer(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = nested(parse_qsl(body if method == "POST" else url.query, keep_blank_values=True))
                key = self.headers.get("Idempotency-Key")
                if not url.path.startswith("/v1/"):
                    return self._hosted(url.path)
                status, doc = fake.handle(method, url.path, params, key)
                if url.path in fake._fail:  # made, but the answer is lost on the way
                    fake._fail.discard(url.path)
                    status, doc = _error(500, "the answer was lost (a test hook)", "api_error")
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(_ids)}")
                self.end_headers()
                self.wfile.write(data)

            def _hosted(self, path: str) -> None:
                """Stripe's hosted pages (Checkout, portal, invoice) as a plain stand-in page."""
                what = {"pay": "Checkout", "portal": "Customer portal", "invoice": "Invoice"}.get(
                    path.strip("/").split("/")[0], "Stripe")
                data = (f"<!doctype html><title>{what}</title><h1>{what} (test stand-in)</h1>"
                        f"<p>{path}</p>").encode()
                self.send_response(200 if what != "Stripe" else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

        super().__init__(Handler)

    @property
    def now(self) -> int:
        return self.frozen if self.frozen is not None else int(time.time())

    # ---- the endpoints --------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, Any], key: str | None) -> tuple[int, dict]:
        with self._lock:
            self.calls.append((method, path, params, key))
            if key and method == "POST" and key in self._idempotent:
                sent, answer = self._idempotent[key]
                if sent != {"path": path, **params}:
                    return _error(400, f"Keys for idempotent requests can only be used with the same "
                                       f"parameters they were first used with: {key}", "idempotency_error")
                return copy.deepcopy(answer)
            answer = self._route(method, path, params)
            if key and method == "POST":
                self._idempotent[key] = ({"path": path, **params}, copy.deepcopy(answer))
            return answer

    def _route(self, method: str, path: str, p: dict[str, Any]) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]  # after v1
        one = len(parts) == 2 and parts[1] in self.objects
        if method == "GET" and parts == ["prices"]:
            keys = p.get("lookup_keys", [])
            found = [o for o in self.objects.values() if o["object"] == "price" and o["lookup_key"] in keys]
            return 200, self._list(found[:1], "/v1/prices")
        if method == "POST" and parts == ["products"]:
            return 200, self._new("product", "prod", name=p["name"])
        if method == "POST" and parts == ["prices"]:
            recurring = fixture("price")["recurring"] | {"interval": p["recurring"]["interval"]}
            return 200, self._new("price", "price", product=p["product"], unit_amount=int(p["unit_amount"]),
                                  unit_amount_decimal=p["unit_amount"], currency=p["currency"],
                                  tax_behavior=p["tax_behavior"], lookup_key=p["lookup_key"], recurring=recurring)
        if method == "POST" and parts == ["customers"]:
            return 200, self._new("customer", "cus", name=p.get("name"), metadata=p.get("metadata", {}),
                                  email=p.get("email"), currency=None)
        if parts[:1] == ["customers"] and one:
            customer = self.objects[parts[1]]
            if method == "POST":
                settings = p.get("invoice_settings", {})
                customer["invoice_settings"] |= {k: v or None for k, v in settings.items()}
            return 200, customer
        if method == "POST" and parts == ["subscriptions"]:
            return 200, self._subscription(p)
        if parts[:1] == ["subscriptions"] and one:
            sub = self.objects[parts[1]]
            if method == "POST" and "default_payment_method" in p:
                sub["default_payment_method"] = p["default_payment_method"] or None
            return 200, sub
        if method == "POST" and len(parts) == 2 and parts[0] == "subscription_items":
            return self._set_quantity(parts[1], int(p["quantity"]), self.now)
        if method == "POST" and parts == ["checkout", "sessions"]:
            return self._checkout(p)
        if method == "GET" and parts[:2] == ["checkout", "sessions"] and len(parts) == 3 and parts[2] in self.objects:
            return 200, self.objects[parts[2]]
        if method == "GET" and parts[:1] in (["setup_intents"], ["payment_methods"]) and one:
            return 200, self.objects[parts[1]]
        if method == "POST" and parts == ["billing_portal", "sessions"]:
            if p.get("customer") not in self.objects:
                return _error(400, f"No such customer: '{p.get('customer')}'")
            session = self._new("billing_portal.session", "bps", customer=p["customer"], flow=None,
                                return_url=p.get("return_url"), configuration="bpc_fake")
            session["url"] = f"{self.url}/portal/{session['id']}"
            return 200, session
        if method == "GET" and parts == ["invoices"]:
            found = sorted((o for o in self.objects.values() if o["object"] == "invoice"
                            and o["customer"] == p.get("customer")), key=lambda o: o["created"], reverse=True)
            return 200, self._list(found[:int(p.get("limit", 10))], "/v1/invoices")
        if method == "POST" and parts == ["invoices", "create_preview"]:
            return self._preview(p)
        return _error(404, f"no fake for {method} {path}")

    def _list(self, data: list[dict[str, Any]], url: str) -> dict[str, Any]:
        return {"object": "list", "data": data, "has_more": False, "url": url}

    def _new(self, resource: str, prefix: str, **fields: Any) -> dict[str, Any]:
        obj = fixture(resource)
        obj.update(id=f"{prefix}_fake{next(_ids)}", created=self.now, livemode=False, **fields)
        self.objects[obj["id"]] = obj
        return obj

    def _subscription(self, p: dict[str, Any]) -> dict[str, Any]:
        now = self.now
        trial_days = int(p.get("trial_period_days") or 0)
        trial_end = now + trial_days * 86400 if trial_days else None
        end = trial_end or add_month(now)
        sub = self._new("subscription", "sub", customer=p["customer"], metadata=p.get("metadata", {}),
                        status="trialing" if trial_days else "active", currency="eur",
                        trial_start=now if trial_days else None, trial_end=trial_end,
                        start_date=now, billing_cycle_anchor=end, cancel_at_period_end=False, cancel_at=None,
                        canceled_at=None, ended_at=None, latest_invoice=None, default_payment_method=None,
                        trial_settings=p.get("trial_settings", fixture("subscription")["trial_settings"]))
        item = fixture("subscription_item")
        price = self.objects[p["items"][0]["price"]]
        item.update(id=f"si_fake{next(_ids)}", price=price, quantity=int(p["items"][0]["quantity"]),
                    subscription=sub["id"], created=now, current_period_start=now, current_period_end=end,
                    metadata={})
        item["plan"] = {**item["plan"], "id": price["id"], "amount": price["unit_amount"], "currency": "eur",
                        "billing_scheme": "per_unit", "interval_count": 1, "product": price["product"]}
        self.objects[item["id"]] = item
        sub["items"] = {"object": "list", "data": [item], "has_more": False,
                        "total_count": 1, "url": f"/v1/subscription_items?subscription={sub['id']}"}
        if not trial_days:
            self._invoice(sub, "subscription_create", "paid")
        return sub

    # ---- money ----------------------------------------------------------------------
    def _line(self, sub: dict[str, Any], item: dict[str, Any], amount: int, quantity: int, start: int, end: int,
              description: str, proration: bool) -> dict[str, Any]:
        line = fixture("line_item")
        line.update(id=f"il_fake{next(_ids)}", amount=amount, subtotal=amount, currency="eur", quantity=quantity,
                    description=description, period={"start": start, "end": end}, invoice=None,
                    discount_amounts=[], discounts=[], taxes=[], pretax_credit_amounts=[], metadata={},
                    subscription=sub["id"])
        line["pricing"] = {"type": "price_details", "unit_amount_decimal": item["price"]["unit_amount_decimal"],
                           "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]}}
        line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                          "subscription_item_details": {"invoice_item": f"ii_fake{next(_ids)}" if proration else None,
                                                        "proration": proration, "proration_details": {
                                                            "credited_items": None},
                                                        "subscription": sub["id"], "subscription_item": item["id"]}}
        return line

    def _prorations(self, sub: dict[str, Any], item: dict[str, Any], old: int, new: int, at: int) -> list[dict]:
        """The two proration items of a quantity change at `at` (none during a trial)."""
        start, end = item["current_period_start"], item["current_period_end"]
        if sub["status"] == "trialing" or old == new or not start <= at < end:
            return []
        unit = item["price"]["unit_amount"]
        name = "Bulwark protected server"
        when = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%d %b %Y")
        return [self._line(sub, item, -prorated(unit * old, start, end, at), old, at, end,
                           f"Unused time on {old} × {name} after {when}", True),
                self._line(sub, item, prorated(unit * new, start, end, at), new, at, end,
                           f"Remaining time on {new} × {name} after {when}", True)]

    def _set_quantity(self, item_id: str, quantity: int, at: int) -> tuple[int, dict]:
        item = self.objects.get(item_id)
        if item is None:
            return _error(404, f"No such subscription item: '{item_id}'")
        sub = self.objects[item["subscription"]]
        self.pending.setdefault(sub["customer"], []).extend(self._prorations(sub, item, item["quantity"], quantity, at))
        item["quantity"] = quantity
        return 200, item

    def _invoice_doc(self, sub: dict[str, Any], lines: list[dict[str, Any]], reason: str, status: str,
                     start: int, end: int) -> dict[str, Any]:
        inv = fixture("invoice")
        total = sum(line["amount"] for line in lines)
        inv.update(id=f"in_fake{next(_ids)}", customer=sub["customer"], subscription=sub["id"], currency="eur",
                   created=self.now, livemode=False, billing_reason=reason, status=status,
                   lines=self._list(lines, "/v1/invoices/upcoming/lines"), subtotal=total, total=total,
                   subtotal_excluding_tax=total, total_excluding_tax=total, amount_due=max(total, 0),
                   amount_paid=max(total, 0) if status == "paid" else 0,
                   amount_remaining=0 if status == "paid" else max(total, 0), amount_overpaid=0,
                   period_start=start, period_end=end, total_taxes=[], number=None, hosted_invoice_url=None,
                   invoice_pdf=None, account_country="FR", last_finalization_error=None, from_invoice=None,
                   parent={"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]}},
                   status_transitions={"finalized_at": self.now, "marked_uncollectible_at": None,
                                       "paid_at": self.now if status == "paid" else None, "voided_at": None},
                   shipping_cost=None, due_date=None, next_payment_attempt=None)
        return inv

    def _next_period_line(self, sub: dict[str, Any], item: dict[str, Any], quantity: int) -> dict[str, Any]:
        start = item["current_period_end"]
        return self._line(sub, item, item["price"]["unit_amount"] * quantity, quantity, start, add_month(start),
                          f"{quantity} × Bulwark protected server (at €{item['price']['unit_amount'] / 100:.2f} / month)",
                          False)

    def _invoice(self, sub: dict[str, Any], reason: str, status: str) -> dict[str, Any]:
        """The invoice of the period starting now: pending prorations and the period."""
        item = sub["items"]["data"][0]
        start, end = item["current_period_start"], item["current_period_end"]
        period = self._line(sub, item, item["price"]["unit_amount"] * item["quantity"], item["quantity"], start, end,
                            f"{item['quantity']} × Bulwark protected server", False)
        lines = self.pending.pop(sub["customer"], []) + [period]
        inv = self._invoice_doc(sub, lines, reason, status, start, end)
        n = sum(1 for o in self.objects.values() if o["object"] == "invoice") + 1
        inv.update(number=f"BW-{n:04d}", hosted_invoice_url=f"{self.url}/invoice/{inv['id']}",
                   invoice_pdf=f"{self.url}/invoice/{inv['id']}.pdf")
        for line in lines:
            line["invoice"] = inv["id"]
        self.objects[inv["id"]] = inv
        sub["latest_invoice"] = inv["id"]
        return inv

    def _preview(self, p: dict[str, Any]) -> tuple[int, dict]:
        sub = self.objects.get(p.get("subscription", ""))
        if sub is None or sub["customer"] != p.get("customer", sub["customer"]):
            return _error(400, "preview: no such subscription for that customer")
        item = sub["items"]["data"][0]
        details = p.get("subscription_details", {})
        lines = copy.deepcopy(self.pending.get(sub["customer"], []))
        quantity = item["quantity"]
        for change in details.get("items", []):
            if change.get("id") != item["id"]:
                return _error(400, f"No such subscription item: '{change.get('id')}'")
            quantity = int(change.get("quantity", quantity))
        if quantity != item["quantity"] and details.get("proration_behavior", "create_prorations") != "none":
            at = int(details.get("proration_date") or self.now)
            lines += self._prorations(sub, item, item["quantity"], quantity, at)
        lines.append(self._next_period_line(sub, item, quantity))
        inv = self._invoice_doc(sub, lines, "upcoming", "draft", item["current_period_end"],
                                add_month(item["current_period_end"]))
        inv["id"] = f"upcoming_in_fake{next(_ids)}"
        inv["status_transitions"]["finalized_at"] = None
        return 200, inv

    # ---- Checkout ---------------------------------------------------------------------
    def _checkout(self, p: dict[str, Any]) -> tuple[int, dict]:
        if p.get("mode") != "setup" or p.get("customer") not in self.objects:
            return _error(400, "the fake serves Checkout in setup mode for an existing customer")
        if not p.get("currency"):
            return _error(400, "currency is required in setup mode")
        session = self._new("checkout.session", "cs_test", mode="setup", customer=p["customer"],
                            currency=p["currency"], success_url=p["success_url"], cancel_url=p["cancel_url"],
                            metadata=p.get("metadata", {}), client_reference_id=p.get("client_reference_id"),
                            payment_intent=None, setup_intent=None, status="open", payment_status="no_payment_required",
                            amount_subtotal=None, amount_total=None, subscription=None, invoice=None,
                            customer_details=None, payment_method_types=["card"], shipping_cost=None,
                            total_details=None, expires_at=self.now + 86400)
        session["url"] = f"{self.url}/pay/{session['id']}"
        return 200, session

    # ---- test hooks -----------------------------------------------------------------
    def set_status(self, sub_id: str, status: str) -> dict[str, Any]:
        with self._lock:
            self.objects[sub_id]["status"] = status
            return copy.deepcopy(self.objects[sub_id])

    def start_period(self, sub_id: str, at: int | None = None, status: str = "active") -> dict[str, Any]:
        """A new monthly period from `at` (a trial ended, a month turned): invoiced with
        the pending prorations, paid or not (`status` past_due). Returns the invoice."""
        with self._lock:
            sub = self.objects[sub_id]
            item = sub["items"]["data"][0]
            start = at if at is not None else item["current_period_end"]
            item["current_period_start"], item["current_period_end"] = start, add_month(start)
            reason = "subscription_cycle" if sub["status"] != "trialing" else "subscription_update"
            sub["status"] = status
            inv = self._invoice(sub, reason, "paid" if status == "active" else "open")
            return copy.deepcopy(inv)

    def complete_checkout(self, session_id: str, last4: str = "4242") -> dict[str, Any]:
        """The customer typed a card on the Checkout page: a succeeded SetupIntent with a
        card PaymentMethod attached to the customer. Returns the completed session."""
        with self._lock:
            session = self.objects[session_id]
            card = fixture("payment_method")["card"] | {"last4": last4, "brand": "visa", "country": "FR"}
            pm = self._new("payment_method", "pm", customer=session["customer"], card=card, metadata={})
            si = self._new("setup_intent", "seti", customer=session["customer"], payment_method=pm["id"],
                           status="succeeded", usage="off_session", last_setup_error=None, next_action=None,
                           metadata=session["metadata"])
            session.update(status="complete", setup_intent=si["id"])
            return copy.deepcopy(session)

    def portal_cancel(self, sub_id: str) -> dict[str, Any]:
        """The customer cancelled in the portal: at the end of the period, no refund."""
        with self._lock:
            sub = self.objects[sub_id]
            sub.update(cancel_at_period_end=True, cancel_at=sub["items"]["data"][0]["current_period_end"],
                       canceled_at=self.now)
            return copy.deepcopy(sub)

    def fail_once(self, path: str) -> None:
        """The next call to `path` is made but its answer is lost (a 500)."""
        with self._lock:
            self._fail.add(path)

    def event(self, type_: str, obj: dict[str, Any], secret: str, *, at: int | None = None,
              event_id: str | None = None) -> tuple[bytes, str]:
        """A webhook delivery (body, Stripe-Signature header), signed with the library."""
        ev = fixture("event")
        ev.update(id=event_id or f"evt_fake{next(_ids)}", type=type_, created=at or int(time.time()),
                  data={"object": obj, "previous_attributes": None}, livemode=False)
        body = json.dumps(ev)
        return body.encode(), stripe.WebhookSignature.generate_signature_header(body, secret, at or int(time.time()))
