"""The public API against its own OpenAPI document, with schemathesis.

A hub seeded with a tenant, agents, policies, a deployment, a list and metrics is served
by Hypercorn on loopback; every operation in /api/v1/openapi.json gets generated valid
and invalid requests with the tenant's all-scopes API token, and those a token may not
make (admin, outside a tenant) also as the tenant's signed-in owner. No answer may be a 5xx, and
each must have a documented status, content type and body shape.

Path parameters are pinned to the seeded objects (random ids would only meet 404s);
everything else is generated. Schemathesis's requests go through a real socket, so the
hub runs in its own thread and event loop, as in production.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.app import create_app
from hub.config import HubConfig
from tests.hub.harness import PASSWORD, HubHarness, enroll

POLICY = (Path(__file__).parents[2] / "examples" / "ssh.bw").read_text()
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and generation mode: ~40 operations stay well under a minute in CI.
EXAMPLES = max(4, settings.default.max_examples // 10)


@dataclasses.dataclass(frozen=True)
class Seeded:
    config: HubConfig
    token: str
    owner_email: str
    path_parameters: dict[str, str]
    owner_totp: Any = None  # the owner's authenticator (every account has 2FA)


async def _seed(harness: HubHarness) -> Seeded:
    """One of each object the API shows, made through the API and the agent protocol."""
    async with harness:
        t = await harness.tenant("acme")
        api = t.token
        web1 = await enroll(t, ["web"], "web1")
        await enroll(t, ["web", "db"], "web2")
        await web1.report(healthy=True, mode="none", drift=["nft table edited"])
        r = await api.post(t.base + "/policies", json={"name": "ssh", "source": POLICY})
        assert r.status_code == 201, await r.get_data(as_text=True)
        policy_id = (await r.get_json())["id"]
        r = await api.post(t.base + "/policies", json={"name": "broken", "source": "this is not a policy"})
        assert r.status_code == 201, await r.get_data(as_text=True)
        r = await api.post(t.base + "/deployments", json={"policy_id": policy_id, "labels": ["web"],
                                                          "canary_agent_ids": [web1.id]})
        assert r.status_code == 201, await r.get_data(as_text=True)
        deployment_id = (await r.get_json())["id"]
        r = await api.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
        list_id = (await r.get_json())["id"]
        r = await api.post(f"{t.base}/lists/{list_id}/entries", json={"add": [
            {"network": "192.0.2.0/24", "comment": "scanner"},
            {"network": "2001:db8::1", "expires_at": int(time.time()) + 86400},
            {"network": "198.51.100.7"}]})
        assert r.status_code == 200, await r.get_data(as_text=True)
        await api.post(f"{t.base}/lists/{list_id}/entries", json={"remove": ["198.51.100.7"]})
        now = int(time.time())
        r = await web1.post("/agent/v1/metrics", json={
            "points": [{"ts": now - i, "rule": "ssh", "packets": 10, "bytes": 600} for i in range(5)],
            "top_sources": [{"ts": now, "source": "203.0.113.9", "packets": 70}]})
        assert r.status_code == 200, await r.get_data(as_text=True)
        # A token of its own for DELETE /tokens/{token_id}, so the test's token stays valid.
        spare = await t.owner.post(t.base + "/tokens", json={"name": "spare", "scopes": ["read"]})
        members = await (await t.owner.get(t.base + "/members")).get_json()
        return Seeded(harness.config, api.token, t.user.email, owner_totp=harness.totp[t.user.email], path_parameters={
            "tenant_id": str(t.id), "agent_id": web1.id, "policy_id": policy_id, "version": "1",
            "deployment_id": deployment_id, "list_id": list_id, "token_id": (await spare.get_json())["id"],
            "member_id": str(members["members"][0]["id"]),
        })


@contextlib.contextmanager
def served(config: HubConfig) -> Iterator[str]:
    """A fresh app on the seeded data, served by Hypercorn in its own thread; yields its URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    started: dict[str, object] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        started["loop"], started["stop"] = asyncio.get_running_loop(), stop
        ready.set()
        hc = HypercornConfig()
        hc.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns and closes it
        hc.accesslog = hc.errorlog = None
        await serve(create_app(config), hc, shutdown_trigger=stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="hub-under-test")
    thread.start()
    try:
        ready.wait(10)
        for _ in range(200):
            with contextlib.suppress(requests.ConnectionError):
                # the socket listens at once: this waits for the start (migrations), generously
                if requests.get(url + "/readyz", timeout=60).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        loop, stop = started["loop"], started["stop"]
        loop.call_soon_threadsafe(stop.set)  # type: ignore[attr-defined]
        thread.join(30)


def _fixed(operation, seeded: Seeded) -> dict:
    names = {p.name for p in operation.path_parameters}
    fixed: dict = {"path_parameters": {k: v for k, v in seeded.path_parameters.items() if k in names}}
    if operation.path.endswith("/metrics/stream"):
        fixed["query"] = {"max_s": 0.2}  # the event stream would otherwise stay open for up to a day
    return fixed


def _fuzz(operations, seeded: Seeded, url: str, session: requests.Session, headers: dict) -> list[str]:
    """Each operation's failures (all of them, not just the first operation's)."""
    failures = []
    for operation in operations:
        fixed = _fixed(operation, seeded)
        modes = [schemathesis.GenerationMode.POSITIVE]
        if "query" not in fixed:
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:

            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(mode, **fixed))
            def check(case) -> None:
                case.call_and_validate(base_url=url, session=session, headers=headers, checks=CHECKS)

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def _needs_a_user(config: HubConfig) -> set[str]:
    """Labels of the operations an API token cannot do: admin ones and those outside a tenant."""
    app = create_app(config)
    labels = set()
    for rule in app.url_map.iter_rules():
        permission = getattr(app.view_functions[rule.endpoint], "bulwark_permission", None)
        if rule.rule.startswith("/api/v1/") and permission in {None, "admin"}:
            path = re.sub(r"<(?:[^:<>]+:)?([^:<>]+)>", r"{\1}", rule.rule)
            labels |= {f"{m} {path}" for m in rule.methods - {"HEAD", "OPTIONS"}}
    return labels


# PostgreSQL refuses what SQLite stores (NUL in text, integers beyond the column's width).
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_every_operation_keeps_its_contract(tmp_path, backend):
    seeded = asyncio.run(_seed(HubHarness(tmp_path)))
    with served(seeded.config) as url, requests.Session() as api, requests.Session() as browser:
        schema = schemathesis.openapi.from_url(url + "/api/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 30
        failures = _fuzz(operations, seeded, url, api, {"Authorization": f"Bearer {seeded.token}"})
        # Then what tokens may not do (403 above), as the signed-in owner.
        r = browser.post(url + "/auth/login", json={"email": seeded.owner_email, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        r = browser.post(url + "/auth/second-factor", json={"code": seeded.owner_totp.at(time.time() + 30)},
                         headers={"X-CSRF-Token": r.json()["csrf_token"]}, timeout=10)
        assert r.status_code == 200, r.text
        needs_a_user = _needs_a_user(seeded.config)
        for_users = [op for op in operations if op.label in needs_a_user]
        assert len(for_users) >= 8
        failures += _fuzz(for_users, seeded, url, browser, {"X-CSRF-Token": r.json()["csrf_token"]})
        assert not failures, "\n\n".join(failures)
