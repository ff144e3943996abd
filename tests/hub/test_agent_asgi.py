"""The agent protocol's hot routes on their own ASGI layer (hub/agent_asgi.py): the same
answers Quart gave, byte for byte where the agent or an operator could notice."""
from __future__ import annotations

import asyncio
import json

import pytest

from hub import agent_asgi
from hub.agent_asgi import bearer_token, is_json, read_json, validated
from hub.blueprints import agent_protocol
from hub.blueprints.agent_protocol import DesiredIn
from hub.errors import InvalidInput, TooManyRequests, Unauthenticated
from tests.hub.harness import enroll

HOT = ["/agent/v1/desired", "/agent/v1/status", "/agent/v1/metrics"]
BAD_JSON = {"error": "invalid_input",
            "message": "The browser (or proxy) sent a request that this server could not understand."}


# --- pure helpers --------------------------------------------------------------------------

@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/vnd.x+json", True),
    ("text/plain", False), ("", False), ("text/x+json", False),
])
def test_json_is_recognised_as_quart_does(content_type, expected):
    assert is_json(content_type) is expected


def test_read_json_refuses_what_is_not_json_and_ignores_what_is_not_sent_as_json():
    assert read_json(b'{"a": 1}', "application/json") == {"a": 1}
    assert read_json(b"{", "text/plain") is None  # then the schema says what is missing
    with pytest.raises(InvalidInput, match="could not understand"):
        read_json(b"{", "application/json")
    with pytest.raises(InvalidInput, match="could not understand"):
        read_json(b"", "application/json")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_json(b'{"a": "\xff"}', "application/json")


def test_nul_is_refused_once_on_the_raw_body_and_an_escaped_backslash_is_not_nul():
    """PostgreSQL cannot store NUL; the hot routes' models leave the check to read_json."""
    with pytest.raises(InvalidInput, match="NUL"):
        read_json(b'{"errors": ["a\\u0000b"]}', "application/json")
    with pytest.raises(InvalidInput, match="NUL"):
        read_json(b'{"lists": {"\\u0000": 1}}', "application/json")
    assert read_json(b'{"errors": ["C:\\\\u0000"]}', "application/json") == {"errors": ["C:\\u0000"]}


def test_validation_errors_name_the_fields():
    with pytest.raises(InvalidInput) as caught:
        validated(DesiredIn, {"wait_s": 301, "surprise": 1})
    assert caught.value.message == "the request does not match its schema"
    assert sorted(d["loc"][0] for d in caught.value.details) == ["surprise", "wait_s"]
    assert validated(DesiredIn, {}).wait_s == 30


def test_bearer_token():
    assert bearer_token("Bearer  bwa_x ") == "bwa_x"
    assert bearer_token("bearer bwa_x") == "bwa_x"
    for bad in ("", "Basic abc", "Bearerbwa_x"):
        with pytest.raises(Unauthenticated, match="bearer token"):
            bearer_token(bad)


# --- through the app ----------------------------------------------------------------------

async def answer(r) -> tuple[int, dict]:
    return r.status_code, json.loads(await r.get_data())


async def test_malformed_json_is_the_same_400_on_every_hot_route(hub):
    a = await enroll(await hub.tenant())
    for path in HOT:
        r = await a.post(path, data=b"{", headers={"Content-Type": "application/json"})
        assert await answer(r) == (400, BAD_JSON)
        assert r.headers["Content-Type"] == "application/json"


async def test_the_body_is_checked_before_the_credential(hub):
    for path in HOT:
        r = await hub.client().post(path, json={"surprise": 1})
        status, body = await answer(r)
        assert status == 400 and body["details"][0]["loc"] == ["surprise"]
        r = await hub.client().post(path, json={})
        assert await answer(r) == (401, {"error": "unauthenticated",
                                         "message": "send the agent credential as a bearer token"})


async def test_an_oversize_body_is_refused_with_or_without_its_length(hub):
    a = await enroll(await hub.tenant())
    limit = hub.config.max_body_bytes
    too_large = (413, {"error": "payload_too_large", "message": f"the body may have at most {limit} bytes"})
    body = b'{"wait_s": 0}' + b" " * limit
    for path in HOT:
        declared = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        assert await answer(await a.post(path, data=body, headers=declared)) == too_large
        # The test client sends no Content-Length: the body is counted as it arrives.
        assert await answer(await a.post(path, data=body, headers={"Content-Type": "application/json"})) == too_large
    at_limit = b'{"wait_s": 0}'.ljust(limit)
    assert (await a.post(HOT[0], data=at_limit, headers={"Content-Type": "application/json"})).status_code == 200


async def test_bad_and_revoked_credentials_get_401(hub):
    t = await hub.tenant()
    a = await enroll(t)
    for cred in ("bwa_x", "bwa_" + "0" * 32 + "_nope", a.token[:-2] + "xx"):
        r = await hub.client().post(HOT[0], json={}, headers={"Authorization": f"Bearer {cred}"})
        assert await answer(r) == (401, {"error": "unauthenticated", "message": "bad agent credential"})
    assert (await t.owner.post(f"{t.base}/agents/{a.id}/revoke")).status_code == 200
    for path in HOT:
        assert await answer(await a.post(path, json={})) == (
            401, {"error": "unauthenticated", "message": "this agent was revoked"})


async def test_a_wrong_method_gets_405_with_allow(hub):
    a = await enroll(await hub.tenant())
    for path in HOT:
        for method in ("GET", "PUT", "DELETE"):
            r = await a.request(method, path)
            assert await answer(r) == (405, {"error": "method_not_allowed",
                                             "message": "The method is not allowed for the requested URL."})
            assert r.headers["Allow"] == "OPTIONS, POST"
        r = await a.request("OPTIONS", path)
        assert r.status_code == 200 and r.headers["Allow"] == "OPTIONS, POST"


async def test_other_paths_still_reach_quart(hub):
    a = await enroll(await hub.tenant())  # enrolment is a Quart route
    r = await a.post("/agent/v1/desired/", json={})
    status, body = await answer(r)
    assert status == 404 and body["error"] == "not_found"


async def test_hot_routes_are_counted_in_the_request_metrics(hub):
    a = await enroll(await hub.tenant())
    await a.desired()
    await a.post("/agent/v1/metrics", json={"surprise": 1})
    text = (await (await hub.client().get("/metrics")).get_data()).decode()
    assert 'bulwark_hub_requests_total{endpoint="agent_protocol.desired_state",method="POST",status="200"} 1.0' in text
    assert 'bulwark_hub_requests_total{endpoint="agent_protocol.ingest",method="POST",status="400"} 1.0' in text
    assert 'bulwark_hub_request_seconds_count{endpoint="agent_protocol.desired_state"} 1.0' in text


async def test_an_unexpected_error_is_a_500_without_details(hub, monkeypatch):
    a = await enroll(await hub.tenant())

    async def broken(*args):
        raise RuntimeError("secret detail")

    route = agent_protocol.HOT_ROUTES["/agent/v1/status"]
    monkeypatch.setitem(agent_protocol.HOT_ROUTES, "/agent/v1/status",
                        agent_protocol.HotRoute(route.endpoint, route.model, broken))
    r = await a.post("/agent/v1/status", json={})
    assert await answer(r) == (500, {"error": "internal", "message": "internal error"})


async def test_an_agent_hanging_up_ends_its_wait(hub):
    a = await enroll(await hub.tenant())
    doc = await a.desired()
    live = hub.app.extensions["bulwark_agents"]
    body = json.dumps({"etag": doc["etag"], "wait_s": 300}).encode()
    hung_up = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if not sent and not hung_up.is_set() and body:
            sent.append({})
            return {"type": "http.request", "body": body, "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/agent/v1/desired", "raw_path": b"/agent/v1/desired", "query_string": b"", "root_path": "",
             "headers": [(b"authorization", f"Bearer {a.token}".encode()), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8443)}
    call = asyncio.create_task(hub.app(scope, receive, send))
    while live.pending_pushes == 0:
        await asyncio.sleep(0.01)
    hung_up.set()
    await call
    assert live.pending_pushes == 0
    assert sent == [{}]  # no answer to a closed connection


def test_the_quart_routes_for_the_hot_paths_are_gone(hub):
    rules = {r.rule for r in hub.app.url_map.iter_rules()}
    assert "/agent/v1/enroll" in rules
    assert not rules & set(HOT)
    assert agent_asgi.AgentFastPath  # the layer that serves them instead


@pytest.mark.parametrize("exc", [TooManyRequests("slow down", retry_after_s=7), Unauthenticated("who?"),
                                 InvalidInput("bad", details=[{"loc": ["x"]}])])
async def test_fast_path_and_quart_map_a_hub_error_alike(exc):
    """One error-to-HTTP mapping: status, body and headers (Retry-After) are the same on both."""
    from quart import Quart

    from hub.app import error_response

    async with Quart(__name__).app_context():
        quart = error_response(exc)
        fast = agent_asgi.error_answer(json.dumps, exc)
        assert fast.status == quart.status_code
        assert json.loads(fast.body) == json.loads(await quart.get_data())
        quart_headers = {k.lower(): v for k, v in quart.headers.items()
                         if k.lower() not in ("content-type", "content-length")}
        fast_headers = {k.decode(): v.decode() for k, v in fast.headers[1:]}
        assert fast_headers == quart_headers
