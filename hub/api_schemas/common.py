"""What every area of the public API shares: the strict base, the error body, `responds`.

A response model refuses unknown fields like a request model does: a service that adds
a field without adding it here fails loudly (500, and the contract tests) instead of
sending something the published schema does not describe.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from quart_schema import document_response, validate_response

from hub.errors import InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


# The largest integers the database stores (BigIntField, IntField): bigger ones are a
# client's mistake (400, or 404 in a path), never an overflow in the driver (500).
MAX_INT = 2**63 - 1
MAX_INT32 = 2**31 - 1


class Closed(BaseModel):
    """Unknown fields are refused, not ignored. For bodies whose NUL check was done once
    on the raw text (`has_nul_escape`), as the agent protocol's hot routes do."""

    model_config = ConfigDict(extra="forbid")


class Strict(Closed):
    """Closed, and NUL in any text is refused too: PostgreSQL cannot store it (in text
    or JSON columns)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("text may not contain NUL (\\u0000)")
        return value


class RenameIn(Strict):
    name: str = Field(min_length=1, max_length=200, description="the new name")


class Deleted(Strict):
    id: uuid.UUID
    deleted: bool = True


def schema_error(err: Any) -> InvalidInput:
    """A failed validation (pydantic's, or whatever quart-schema raised) as the hub's 400."""
    details = err.errors(include_url=False, include_context=False, include_input=False) \
        if hasattr(err, "errors") else str(err)
    return InvalidInput("the request does not match its schema", details=details)


def has_nul(text: str, data: Any) -> bool:
    """Whether JSON `text`, parsed as `data`, holds NUL in a string: a NUL can only come
    from the escape, so the walk over `data` runs only when the text has one."""
    return "\\u0000" in text and _has_nul(data)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class ErrorBody(BaseModel):
    """An error: a code for programs, a message for people."""

    error: str = Field(description="machine-readable code: invalid_input, unauthenticated, forbidden, "
                                   "not_found, conflict, payload_too_large, ...")
    message: str = Field(description="what went wrong, for a person")
    details: Any = Field(default=None, description="invalid_input only: the offending fields or lines")


# What each documented error status means across the API.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the request does not match its schema, or its content is wrong (see `details`)",
    401: "no API token, or one that is unknown, revoked or expired",
    403: "the token's scopes (or the user's role) do not allow this",
    404: "no such object in this tenant (another tenant's objects are absent too)",
    409: "the request clashes with the current state",
    413: "the body is larger than this route accepts",
    422: "well-formed, but past a work budget (e.g. a policy too large to check in time)",
    429: "too many attempts from this address or for this account: wait for `Retry-After`",
}

# Every tenant route can fail authentication, scope and lookup.
TENANT_ERRORS = (401, 403, 404)
# ...and those taking a body or query string can fail validation.
INPUT_ERRORS = (400, *TENANT_ERRORS)
BODY_ERRORS = (*INPUT_ERRORS, 413)


def responds(model: type, status: int = 200, *, errors: Iterable[int] = TENANT_ERRORS) -> Callable[[F], F]:
    """Validate the handler's answer against `model` (sent with `status`) and document
    the error statuses it may answer with, all with `ErrorBody`.

    Goes right under the route decorator: the handler below returns a dict or a model.
    """

    def decorate(func: F) -> F:
        return validate_response(model, status)(_document_errors(func, errors))

    return decorate


def _document_errors(func: F, errors: Iterable[int]) -> F:
    for code in sorted(set(errors)):
        func = document_response(ErrorBody, code)(func)
    return func


def raw_request(*media_types: str, description: str) -> Callable[[F], F]:
    """Document a body the handler reads itself (not JSON), e.g. a list import; an
    absent body counts as empty."""

    def decorate(func: F) -> F:
        func.bulwark_raw_request = (media_types, description)  # type: ignore[attr-defined]
        return func

    return decorate


def raw_response(media_type: str, description: str, status: int = 200, *,
                 errors: Iterable[int] = TENANT_ERRORS) -> Callable[[F], F]:
    """Document a success answer that is not a JSON model (a Plan as stored, an event
    stream), and the error statuses, like `responds`."""

    def decorate(func: F) -> F:
        func = _document_errors(func, errors)
        func.bulwark_raw_response = (status, media_type, description)  # type: ignore[attr-defined]
        return func

    return decorate
