"""OpenAPI links: which answer's ids feed which next request.

Why: a client (and schemathesis's stateful run) that knows only the document would
otherwise guess ids and meet 404s. The links are derived from the paths, not written
per route, so a new route is linked the day it is added:

- *created*: the POST that answers 201 on `P` links to every operation on `P/{x}` and
  on its children one literal deeper (`P/{x}/entries`), with `x` from the answer's `id`;
- *listed*: the GET on `P` links to the same operations, with `x` from the first
  listed item (`$response.body#/<array>/0/id`);
- *opened*: the GET on an item `P/{x}` links to the operations under it that add only
  literal segments (`P/{x}/versions`, `P/{x}/alerts/rules`).

Where the item names its key otherwise (`version`, `kind`), the field named like the
path parameter is used instead of `id`. Every other path parameter is passed on as it
was requested. `BODY_LINKS` holds the few links the paths cannot show: ids that travel
in a request body; `PATH_LINKS` the path ids the answers hold other than as items.
"""
from __future__ import annotations

import re
from typing import Any

PARAM = re.compile(r"^\{([^}]+)\}$")

# (source operationId, status) -> [(target operationId, requestBody template)]
BODY_LINKS: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {
    ("post_policies_create", "201"): [("post_deployments_create", {"policy_id": "$response.body#/id"})],
    ("post_tenants_invite", "201"): [("post_tenants_accept", {"token": "$response.body#/token"})],
    ("put_policies_save", "200"): [("post_deployments_create", {"policy_id": "$response.body#/id",
                                                                "version": "$response.body#/latest_version"})],
}
# (source operationId, status) -> [(target operationId, {path parameter: expression})]: ids
# the path rules cannot see, such as an item's list of plain version numbers.
PATH_LINKS: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = {
    ("get_marketplace_get", "200"): [("get_marketplace_version", {"version": "$response.body#/versions/0"})],
}


def add_links(doc: dict[str, Any]) -> None:
    """Write `links` into the 2xx responses of `doc` (an OpenAPI 3.1 document), in place."""
    operations = [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]
    for _, _, op in operations:  # quart-schema keys them by int, JSON by text
        op["responses"] = {str(status): response for status, response in op["responses"].items()}
    for s_path, s_method, source in operations:
        for status, key_of in _producers(doc, s_path, s_method, source):
            links = {}
            for t_path, _t_method, target in operations:
                x = _introduced(s_path, t_path, opened=status is None)
                if x is None or target is source:
                    continue
                parameters = {f"path.{p}": f"$request.path.{p}" for p in _params(t_path)
                              if p != x or status is None}
                if status is not None:
                    field = key_of(x)
                    if field is None:
                        continue
                    parameters[f"path.{x}"] = field
                links[target["operationId"]] = {"operationId": target["operationId"], "parameters": parameters}
            if links:
                _with_links(source, status or _ok(source)).update(links)
    by_id = {op["operationId"]: op for _, _, op in operations}
    for (source_id, status), targets in BODY_LINKS.items():
        links = _with_links(by_id[source_id], status)
        for target_id, body in targets:
            target_path = next(p for p, _, op in operations if op is by_id[target_id])
            links[target_id] = {"operationId": target_id, "requestBody": body,
                                "parameters": {f"path.{p}": f"$request.path.{p}" for p in _params(target_path)}}
    for (source_id, status), path_targets in PATH_LINKS.items():
        links = _with_links(by_id[source_id], status)
        for target_id, given in path_targets:
            target_path = next(p for p, _, op in operations if op is by_id[target_id])
            links[target_id] = {"operationId": target_id, "parameters": {
                f"path.{p}": given.get(p, f"$request.path.{p}") for p in _params(target_path)}}


def _producers(doc: dict[str, Any], path: str, method: str, op: dict[str, Any]):
    """(status, key_of) for each way `op` hands ids on: `key_of(x)` is the expression of
    `x` in its answer; status None means "opened" (the item's own path parameters)."""
    answer = _schema(doc, op)
    if method == "post" and "201" in op["responses"]:
        yield "201", lambda x: _field(doc, answer, x, "$response.body#/")
    elif method == "get":
        if _is_item(path):
            yield None, None
        arrays = [(name, prop) for name, prop in _properties(doc, answer).items()
                  if _deref(doc, prop).get("type") == "array"]
        if len(arrays) == 1:
            name, prop = arrays[0]
            item = _deref(doc, _deref(doc, prop).get("items", {}))
            yield "200", lambda x: _field(doc, item, x, f"$response.body#/{name}/0/")


def _introduced(source: str, target: str, *, opened: bool) -> str | None:
    """The path parameter `target` adds to `source`: `P` → `P/{x}[/literal]`; for an
    opened item `P/{x}` → `P/{x}/literal...`, its own last parameter."""
    if not target.startswith(source + "/"):
        return None
    rest = target[len(source) + 1:].split("/")
    if opened:
        return _params(source)[-1] if not any(PARAM.match(s) for s in rest) else None
    first = PARAM.match(rest[0])
    if first is None or len(rest) > 2 or any(PARAM.match(s) for s in rest[1:]):
        return None
    return first.group(1)


def _field(doc: dict[str, Any], schema: dict[str, Any], x: str, prefix: str) -> str | None:
    properties = _properties(doc, schema)
    for name in (x, "id"):
        if name in properties:
            return prefix + name
    return None


def _params(path: str) -> list[str]:
    return [m.group(1) for s in path.split("/") if (m := PARAM.match(s))]


def _is_item(path: str) -> bool:
    return PARAM.match(path.rsplit("/", 1)[-1]) is not None


def _ok(op: dict[str, Any]) -> str:
    return next(s for s in op["responses"] if s.startswith("2"))


def _response(op: dict[str, Any], status: str) -> dict[str, Any]:
    return op["responses"][status]


def _with_links(op: dict[str, Any], status: str) -> dict[str, Any]:
    """The links of one response, made its own: quart-schema shares response objects
    between the methods of a rule."""
    response = op["responses"][status] = {**op["responses"][status]}
    response["links"] = links = dict(response.get("links", {}))
    return links


def _schema(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = _response(op, _ok(op)).get("content", {})
    media = content.get("application/json")
    return _deref(doc, media["schema"]) if media else {}


def _properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return _deref(doc, schema).get("properties", {})


def _deref(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema
