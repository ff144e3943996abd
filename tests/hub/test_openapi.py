"""The OpenAPI document covers the public API, and only it, with a schema for every answer.

Generated from the route table, so a route added without a response schema (or hidden by
mistake) fails here.
"""
from __future__ import annotations

import re
from pathlib import Path

from hub.api_schemas.common import ErrorBody

AREAS = ("agents", "policies", "deployments", "lists", "metrics", "audit", "assistant", "replay", "captures")


async def _spec(hub) -> dict:
    r = await hub.client().get("/api/v1/openapi.json")
    assert r.status_code == 200
    return await r.get_json()


def _public_operations(app):
    """Every route under /api/v1 but the document and its viewer."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in {"openapi", "docs.swagger_ui"}:
            path = re.sub(r"<(?:[^:<>]+:)?([^:<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield path, method.lower()


async def test_every_public_route_is_documented_with_a_response_schema(hub):
    spec = await _spec(hub)
    operations = list(_public_operations(hub.app))
    assert len(operations) > 30
    for path, method in operations:
        assert method in spec["paths"].get(path, {}), f"{method.upper()} {path} is missing from the spec"
        responses = spec["paths"][path][method]["responses"]
        ok = [status for status in responses if status.startswith("2")]
        assert ok, f"{method.upper()} {path} documents no success response"
        for status in ok:
            (media,) = responses[status]["content"].values()
            assert media["schema"], f"{method.upper()} {path} {status} has no schema"
        if path.startswith("/api/v1/tenants/{"):
            assert {"401", "403", "404"} <= responses.keys(), f"{method.upper()} {path} hides its errors"


async def test_each_area_has_its_paths(hub):
    spec = await _spec(hub)
    for area in AREAS:
        paths = [p for p, ops in spec["paths"].items() if any(area in op.get("tags", []) for op in ops.values())]
        assert any(p.startswith(f"/api/v1/tenants/{{tenant_id}}/{area}") for p in paths), area


async def test_errors_share_one_body_and_the_token_scheme_guards_everything(hub):
    spec = await _spec(hub)
    assert spec["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "bwt_..."}
    assert spec["security"] == [{"token": []}]
    error_schema = ErrorBody.model_json_schema(mode="serialization")
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["properties"] == error_schema["properties"], f"{method} {path} {status}"
                    assert response["description"], f"{method} {path} {status}"


async def test_billing_reads_are_documented_under_the_billing_scope(hub):
    spec = await _spec(hub)
    base = "/api/v1/tenants/{tenant_id}/billing"
    for path, method in ((base, "get"), (base + "/invoices", "get"), (base + "/estimate", "get"),
                         (base + "/checkout", "post"), (base + "/portal", "post")):
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["billing"], path
        assert "Scope `billing`" in operation["description"] + operation.get("summary", ""), path
        assert "200" in operation["responses"], path
    estimate = spec["paths"][base + "/estimate"]["get"]
    assert [p["name"] for p in estimate["parameters"] if p["in"] == "query"] == ["agents"]
    assert "503" in estimate["responses"]  # Stripe away is said, not a 500


async def test_sign_in_and_the_agent_protocol_are_not_in_the_public_spec(hub):
    spec = await _spec(hub)
    assert all(path.startswith("/api/v1/") for path in spec["paths"])
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_bad_input_is_a_clear_400(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "x", "kind": "maybe"})
    assert r.status_code == 400
    body = await r.get_json()
    assert body["error"] == "invalid_input"
    assert [d["loc"] for d in body["details"]] == [["kind"]]
    r = await t.token.get(t.base + "/audit?limit=0")
    assert r.status_code == 400
    assert [d["loc"] for d in (await r.get_json())["details"]] == [["limit"]]
    r = await t.token.post(t.base + "/lists", data=b"\xff{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert (await r.get_json())["error"] == "invalid_input"
    r = await t.token.delete(t.base + "/agents")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    assert (await r.get_json())["error"] == "method_not_allowed"


async def test_every_id_in_a_path_comes_from_a_link(hub):
    """A client that knows only the document (and schemathesis's stateful run) can reach
    every operation: each id in a path is handed over by an answer's link."""
    spec = await _spec(hub)
    operations = {op["operationId"]: (path, op) for path, ops in spec["paths"].items() for op in ops.values()}
    linked: dict[str, set[str]] = {}
    for source_path, source in operations.values():
        source_params = set(re.findall(r"\{(\w+)\}", source_path))
        for status, response in source["responses"].items():
            for name, link in response.get("links", {}).items():
                assert status.startswith("2"), f"{source['operationId']} links from {status}"
                target_path, _ = operations[link["operationId"]]
                assert name == link["operationId"]
                for parameter, expression in link["parameters"].items():
                    location, param = parameter.split(".")
                    assert location == "path" and f"{{{param}}}" in target_path, (name, parameter)
                    if expression.startswith("$request.path."):
                        assert expression.removeprefix("$request.path.") in source_params, (name, expression)
                    else:
                        assert expression.startswith("$response.body#/"), (name, expression)
                linked.setdefault(link["operationId"], set()).update(
                    p.removeprefix("path.") for p in link["parameters"])
    for operation_id, (path, _) in operations.items():
        ids = set(re.findall(r"\{(\w+)\}", path))
        if ids:
            assert ids <= linked.get(operation_id, set()), f"{operation_id}: no link gives {ids}"
    # Ids that travel in a body: a saved policy is deployed, an invitation accepted.
    created = spec["paths"]["/api/v1/tenants/{tenant_id}/policies"]["post"]["responses"]["201"]["links"]
    assert created["post_deployments_create"]["requestBody"] == {"policy_id": "$response.body#/id"}
    invited = spec["paths"]["/api/v1/tenants/{tenant_id}/invitations"]["post"]["responses"]["201"]["links"]
    assert invited["post_tenants_accept"]["requestBody"] == {"token": "$response.body#/token"}


async def test_links_are_written_per_method_not_shared(hub):
    """quart-schema shares a rule's response objects between its methods: a link written
    for GET must not appear on PUT of the same path."""
    spec = await _spec(hub)
    policy = spec["paths"]["/api/v1/tenants/{tenant_id}/policies/{policy_id}"]
    assert "get_policies_versions" in policy["get"]["responses"]["200"]["links"]
    assert "get_policies_versions" not in policy["put"]["responses"]["200"].get("links", {})


def test_schema_names_are_unique_across_areas():
    """quart-schema names a component by its class name alone: two areas with the same
    class name would silently share one schema (and one would be validated wrongly)."""
    import ast
    from collections import Counter

    folder = Path(__file__).resolve().parents[2] / "hub" / "api_schemas"
    names = Counter(node.name for path in folder.glob("*.py")
                    for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef))
    assert [n for n, k in names.items() if k > 1] == []
