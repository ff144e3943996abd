from __future__ import annotations


async def test_health_ready_and_metrics(hub):
    client = hub.client()
    assert (await client.get("/healthz")).status_code == 200
    r = await client.get("/readyz")
    assert r.status_code == 200, await r.get_data(as_text=True)
    r = await client.get("/metrics")
    assert b"bulwark_hub_requests_total" in await r.get_data()


async def test_errors_are_json(hub):
    client = hub.client()
    r = await client.get("/api/v1/nowhere")
    assert r.status_code == 404
    assert (await r.get_json())["error"] == "not_found"
    r = await client.get("/api/v1/tenants")
    assert r.status_code == 401
    assert (await r.get_json())["error"] == "unauthenticated"


async def test_schema_errors_are_clear_4xx(hub):
    r = await hub.client().post("/auth/login", json={"email": "a@b.c"})
    assert r.status_code == 400
    body = await r.get_json()
    assert body["error"] == "invalid_input"
    assert any("password" in str(d["loc"]) for d in body["details"])


async def test_oversized_body_is_refused(hub):
    size = hub.config.max_body_bytes + 1
    r = await hub.client().post("/auth/login", data=b"x" * size,
                                headers={"Content-Type": "application/json", "Content-Length": str(size)})
    assert r.status_code == 413


async def test_openapi_document(hub):
    r = await hub.client().get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = await r.get_json()
    assert "/api/v1/tenants/{tenant_id}/tokens" in doc["paths"]
