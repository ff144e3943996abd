"""The OpenAPI document: quart-schema's, plus what its decorators cannot say.

Covers `/api/v1/` only; adds bodies and answers that are not JSON models (`raw_request`,
`raw_response`), marks JSON bodies required, gives path ids their format and bounds,
describes each error status once (`ERROR_DESCRIPTIONS`), and names operations
`<method>_<area>_<handler>` so ids stay unique across blueprints, and links the
operations so an answer's ids feed the next requests (`links`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, IntegerConverter, Rule, UUIDConverter

from hub.api_schemas.common import ERROR_DESCRIPTIONS
from hub.api_schemas.links import add_links


PUBLIC_PREFIX = "/api/v1/"


class BulwarkOpenAPI(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        doc = super().schema()
        add_links(doc)
        return doc

    def generate_rules(self) -> Iterable[Rule]:
        """Only the public API: browser sign-in and the agent protocol are not part of it."""
        return (rule for rule in super().generate_rules() if rule.rule.startswith(PUBLIC_PREFIX))

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        for operations in paths.values():
            for operation in operations.values():
                _complete(operation, func)
        return paths, components

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, UUIDConverter):
            parameter["schema"] = {"type": "string", "format": "uuid"}
        elif isinstance(converter, IntegerConverter):
            bounds = {"minimum": converter.min if converter.min is not None else 0, "maximum": converter.max}
            parameter["schema"] = {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}
        return parameter

    def operation_id(self, method: str, path: str, func: Callable) -> str | None:
        area = func.__module__.rsplit(".", 1)[-1]
        return f"{method.lower()}_{area}_{func.__name__.rstrip('_')}"


def _complete(operation: dict[str, Any], func: Callable) -> None:
    raw_request = getattr(func, "bulwark_raw_request", None)
    if raw_request is not None:
        media_types, description = raw_request
        operation["requestBody"] = {
            "required": False, "description": description,
            "content": {m: {"schema": {"type": "string"}} for m in media_types},
        }
    elif "requestBody" in operation:  # a JSON model: a request without one is refused
        operation["requestBody"] = {**operation["requestBody"], "required": True}
    # quart-schema shares one responses dict between a rule's methods: build a new one.
    responses: dict[Any, Any] = {}
    for status, response in operation["responses"].items():
        if int(status) in ERROR_DESCRIPTIONS:  # not the error body's docstring each time
            response = {**response, "description": ERROR_DESCRIPTIONS[int(status)]}
        elif not response.get("description"):
            response = {**response, "description": HTTPStatus(int(status)).phrase}
        responses[status] = response
    raw_response = getattr(func, "bulwark_raw_response", None)
    if raw_response is not None:
        status, media_type, description = raw_response
        schema = {"type": "object"} if media_type == "application/json" else {"type": "string"}
        responses[status] = {"description": description, "content": {media_type: {"schema": schema}}}
    operation["responses"] = responses
