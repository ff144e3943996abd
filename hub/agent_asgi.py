"""The agent protocol's hot routes, served on plain ASGI in front of Quart.

Why: at 1,000 long-polling agents nearly all of the hub's CPU per request went to Quart
and its request machinery (request object, contexts, hooks, two tasks per request), not
to the services. `AgentFastPath` wraps `app.asgi_app`: a POST to one of
`agent_protocol.HOT_ROUTES` is answered here; anything else goes to Quart unchanged.

Byte-compatible with what Quart answered: the same order of checks (body size → JSON →
schema → credential), the same error bodies and codes (`hub.errors`; Quart's own wording
for malformed JSON and a wrong method), `405` with `Allow`, JSON as Quart's provider
writes it, and the same request metrics (endpoint names unchanged). The pure parts
(`read_json`, `validated`, `bearer_token`, `json_answer`, `error_answer`) are tested alone.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from quart import Quart
from werkzeug.exceptions import BadRequest, MethodNotAllowed

from hub import json_bounds
from hub.api_schemas.common import has_nul, schema_error
from hub.blueprints.agent_protocol import HOT_ROUTES, HotRoute, Served
from hub.errors import HubError, InvalidInput, PayloadTooLarge, Unauthenticated

log = logging.getLogger("bulwark.hub")

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

ALLOW = b"OPTIONS, POST"
JSON_TYPE = (b"content-type", b"application/json")
# A streamed answer: one JSON document a line; a proxy (nginx) is asked not to buffer it.
STREAM_HEADERS = ((b"content-type", b"application/x-ndjson"), (b"x-accel-buffering", b"no"))
EMPTY_TYPE = (b"content-type", b"text/html; charset=utf-8")  # what Quart sent with an empty answer


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = (EMPTY_TYPE,)


@dataclasses.dataclass(frozen=True, slots=True)
class Streamed:
    """A 200 whose body is `docs`, a line each, written as they come."""

    docs: AsyncIterator[dict[str, Any]]


class Disconnected(Exception):
    """The agent hung up before its answer; nothing is sent."""


# --- pure helpers ----------------------------------------------------------------------

def is_json(content_type: str) -> bool:
    """As Quart decides whether to parse a body as JSON (otherwise it counts as absent)."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def read_json(body: bytes, content_type: str) -> Any:
    """The body as JSON, or None if it is not sent as JSON. Raises InvalidInput."""
    if not is_json(content_type):
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text") from None
    try:
        data = json_bounds.loads(text)
    except ValueError:
        raise InvalidInput(BadRequest.description) from None
    if has_nul(text, data):  # once here, so the models need not check every field
        raise InvalidInput("text may not contain NUL (\\u0000)")
    return data


def validated(model: type[M], data: Any) -> M:
    """`data` as `model`. Raises InvalidInput with pydantic's errors as `details`."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise schema_error(err) from None


def bearer_token(authorization: str) -> str:
    """The credential in an `Authorization: Bearer ...` header. Raises Unauthenticated."""
    if authorization[:7].lower() != "bearer ":
        raise Unauthenticated("send the agent credential as a bearer token")
    return authorization[7:].strip()


def json_answer(dumps: Callable[..., str], doc: Any, status: int = 200,
                extra: Iterable[tuple[bytes, bytes]] = ()) -> Answer:
    """`doc` written as Quart's jsonify writes it (`dumps` is the app's JSON provider)."""
    return Answer(status, (dumps(doc, separators=(",", ":")) + "\n").encode(), (JSON_TYPE, *extra))


def error_answer(dumps: Callable[..., str], exc: HubError) -> Answer:
    extra = [(name.lower().encode(), value.encode()) for name, value in exc.headers().items()]
    return json_answer(dumps, exc.to_json(), exc.status, extra)


def failure_answer(dumps: Callable[..., str], exc: Exception) -> Answer:
    """What a request (or a stream, as its last line) answers for an error: a HubError's
    own answer, else a bare 500; logged unless it is the caller's."""
    if isinstance(exc, HubError):
        if exc.status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return error_answer(dumps, exc)
    log.error("unhandled error", exc_info=exc)
    return json_answer(dumps, {"error": "internal", "message": "internal error"}, 500)


def wrong_method(dumps: Callable[..., str], method: str) -> Answer:
    if method == "OPTIONS":
        return Answer(200, b"", (EMPTY_TYPE, (b"allow", ALLOW)))
    return json_answer(dumps, {"error": "method_not_allowed", "message": MethodNotAllowed.description}, 405,
                       [(b"allow", ALLOW)])


# --- the ASGI shell ----------------------------------------------------------------------

async def read_body(receive: Callable[[], Awaitable[dict]], content_length: str, limit: int) -> bytes:
    """The whole body, refused past `limit` bytes before it is read when the length is
    declared, else as soon as it grows past. Raises PayloadTooLarge, Disconnected."""
    if content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"the body may have at most {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body may have at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def unless_disconnected(receive: Callable[[], Awaitable[dict]], work: Awaitable[T]) -> T:
    """`await work`, cancelled if the client hangs up first (a long-poll then stops
    counting as waiting at once, as under Quart). One watcher task, no second task for
    `work`: this runs for every long-poll. Raises Disconnected."""
    request = asyncio.current_task()
    assert request is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        while (await receive())["type"] != "http.disconnect":
            pass
        hung_up = True
        request.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if hung_up and request.uncancel() == 0:  # our own cancel, not the server stopping
            raise Disconnected from None
        raise
    finally:
        watcher.cancel()


class AgentFastPath:
    """ASGI: the hot agent routes here, everything else to `inner` (Quart's asgi_app)."""

    def __init__(self, app: Quart, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner
        self.served = Served.of(app)  # set up when the agent_protocol blueprint registered

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        route = HOT_ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.inner(scope, receive, send)
        started = time.perf_counter()
        hub = self.served
        try:
            answer = await self._answer(hub, route, scope, receive)
            if isinstance(answer, Streamed):
                answer = await unless_disconnected(receive, self._stream(answer.docs, send))
        except Disconnected:
            return
        endpoint = route.endpoint if scope["method"] in ("POST", "OPTIONS") else "unmatched"
        status = 200 if answer is None else answer.status  # None: streamed, counted once it ended
        hub.rt.metrics.count_request(scope["method"], endpoint, status, time.perf_counter() - started)
        if answer is None:
            return
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())]})
        await send({"type": "http.response.body", "body": answer.body})

    async def _stream(self, docs: AsyncIterator[dict[str, Any]], send: Callable[[dict], Awaitable[None]]) -> None:
        """Write each document as a line of one chunked answer. An error once the answer
        has begun (the agent revoked meanwhile) is its last line, the error body that a
        request would have had as its answer."""
        dumps = self.app.json.dumps
        await send({"type": "http.response.start", "status": 200, "headers": list(STREAM_HEADERS)})
        try:
            async with contextlib.aclosing(docs):
                async for doc in docs:
                    await send({"type": "http.response.body", "body": (dumps(doc, separators=(",", ":")) + "\n").encode(),
                                "more_body": True})
        except Exception as exc:  # noqa: BLE001 (the answer has begun: the error is its last line)
            await send({"type": "http.response.body", "body": failure_answer(dumps, exc).body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _answer(self, hub: Served, route: HotRoute, scope: dict,
                      receive: Callable[[], Awaitable[dict]]) -> Answer | Streamed:
        dumps = self.app.json.dumps
        if scope["method"] != "POST":
            return wrong_method(dumps, scope["method"])
        headers = {name.lower(): value.decode("latin1") for name, value in reversed(scope["headers"])}  # first wins
        try:
            body = await read_body(receive, headers.get(b"content-length", ""), hub.rt.config.max_body_bytes)
            data = validated(route.model, read_json(body, headers.get(b"content-type", "")))
            agent = await hub.live.authenticate(bearer_token(headers.get(b"authorization", "")))
            if route.streams(data):
                return Streamed(route.streamed(hub, agent, data))
            work = route.handler(hub, agent, data)
            doc = await (unless_disconnected(receive, work) if route.long_poll else work)
        except Disconnected:
            raise
        except Exception as exc:  # noqa: BLE001 (every error is an answer, never a traceback to the agent)
            return failure_answer(dumps, exc)
        return Answer(204) if doc is None else json_answer(dumps, doc)
