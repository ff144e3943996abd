"""A small stateful fake of exactly the Stripe endpoints the hub uses, served on loopback,
that the real `stripe` library talks to (StripeClient's `base_addresses`).

Every object it answers with is Stripe's own example of that resource
(`../shared/stripe/fixtures3.json`) with our values written over it, so its keys are
Stripe's keys (tests/hub/test_billing.py walks them). Idempotency keys are honoured as
Stripe honours them: the same key answers the first call's answer again.

Test hooks: `set_status(sub_id, status)` (a payment failed, a card was added...), and
`event(type, obj)` builds a webhook delivery signed like Stripe signs it.
"""
from __future__ import annotations

import copy
import itertools
import json
import threading
import time
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


class StripeFake(LoopbackServer):
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, dict[str, Any], str | None]] = []  # method, path, params, idempotency key
        self._idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def _answer(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = nested(parse_qsl(body if method == "POST" else url.query, keep_blank_values=True))
                key = self.headers.get("Idempotency-Key")
                status, doc = fake.handle(method, url.path, params, key)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(_ids)}")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

        super().__init__(Handler)

    # ---- the endpoints --------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict[str, Any], key: str | None) -> tuple[int, dict]:
        with self._lock:
            self.calls.append((method, path, params, key))
            if key and method == "POST" and key in self._idempotent:
                return self._idempotent[key]
            answer = self._route(method, path, params)
            if key and method == "POST":
                self._idempotent[key] = answer
            return answer

    def _route(self, method: str, path: str, p: dict[str, Any]) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]  # after v1
        if method == "GET" and parts == ["prices"]:
            keys = p.get("lookup_keys", [])
            found = [o for o in self.objects.values() if o["object"] == "price" and o["lookup_key"] in keys]
            return 200, {"object": "list", "data": found[:1], "has_more": False, "url": "/v1/prices"}
        if method == "POST" and parts == ["products"]:
            return 200, self._new("product", "prod", name=p["name"])
        if method == "POST" and parts == ["prices"]:
            recurring = fixture("price")["recurring"] | {"interval": p["recurring"]["interval"]}
            return 200, self._new("price", "price", product=p["product"], unit_amount=int(p["unit_amount"]),
                                  unit_amount_decimal=p["unit_amount"], currency=p["currency"],
                                  tax_behavior=p["tax_behavior"], lookup_key=p["lookup_key"], recurring=recurring)
        if method == "POST" and parts == ["customers"]:
            return 200, self._new("customer", "cus", name=p.get("name"), metadata=p.get("metadata", {}),
                                  email=p.get("email"))
        if method == "POST" and parts == ["subscriptions"]:
            return 200, self._subscription(p)
        if len(parts) == 2 and parts[0] == "subscriptions" and parts[1] in self.objects:
            return 200, self.objects[parts[1]]
        if method == "POST" and len(parts) == 2 and parts[0] == "subscription_items":
            return self._set_quantity(parts[1], int(p["quantity"]))
        return 404, {"error": {"type": "invalid_request_error", "message": f"no fake for {method} {path}"}}

    def _new(self, resource: str, prefix: str, **fields: Any) -> dict[str, Any]:
        obj = fixture(resource)
        obj.update(id=f"{prefix}_fake{next(_ids)}", created=int(time.time()), livemode=False, **fields)
        self.objects[obj["id"]] = obj
        return obj

    def _subscription(self, p: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        trial_days = int(p.get("trial_period_days") or 0)
        sub = self._new("subscription", "sub", customer=p["customer"], metadata=p.get("metadata", {}),
                        status="trialing" if trial_days else "active", currency="eur",
                        trial_start=now if trial_days else None, trial_end=now + trial_days * 86400 if trial_days else None,
                        start_date=now, billing_cycle_anchor=now + trial_days * 86400, cancel_at_period_end=False)
        item = fixture("subscription_item")
        price = self.objects[p["items"][0]["price"]]
        item.update(id=f"si_fake{next(_ids)}", price=price, quantity=int(p["items"][0]["quantity"]),
                    subscription=sub["id"], created=now, current_period_start=now,
                    current_period_end=now + (trial_days or 30) * 86400)
        item["plan"] = {**item["plan"], "id": price["id"], "amount": price["unit_amount"], "currency": "eur"}
        self.objects[item["id"]] = item
        sub["items"] = {"object": "list", "data": [item], "has_more": False,
                        "total_count": 1, "url": f"/v1/subscription_items?subscription={sub['id']}"}
        return sub

    def _set_quantity(self, item_id: str, quantity: int) -> tuple[int, dict]:
        item = self.objects.get(item_id)
        if item is None:
            return 404, {"error": {"type": "invalid_request_error", "message": "no such subscription item"}}
        item["quantity"] = quantity
        return 200, item

    # ---- test hooks -----------------------------------------------------------------
    def set_status(self, sub_id: str, status: str) -> dict[str, Any]:
        with self._lock:
            self.objects[sub_id]["status"] = status
            return copy.deepcopy(self.objects[sub_id])

    def event(self, type_: str, obj: dict[str, Any], secret: str, *, at: int | None = None,
              event_id: str | None = None) -> tuple[bytes, str]:
        """A webhook delivery (body, Stripe-Signature header), signed with the library."""
        ev = fixture("event")
        ev.update(id=event_id or f"evt_fake{next(_ids)}", type=type_, created=at or int(time.time()),
                  data={"object": obj, "previous_attributes": None}, livemode=False)
        body = json.dumps(ev)
        return body.encode(), stripe.WebhookSignature.generate_signature_header(body, secret, at or int(time.time()))
