"""`create_app(config)`: the hub's Quart application.

Resources (database context, background tasks) open in `before_serving` and close in
`after_serving`; per-process state lives in `Runtime` on `app.extensions["bulwark"]`.
Errors become HTTP here and only here (`_install_error_handlers`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from quart import Quart, Response, g, jsonify, request
from quart_auth import QuartAuth
from quart_schema import HttpSecurityScheme, Info, QuartSchema, RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from hub import db
from hub.api_schemas.common import schema_error
from hub.api_schemas.openapi import BulwarkOpenAPI
from hub.config import HubConfig
from hub.errors import ClientError, HubError, PayloadTooLarge
from hub.runtime import Runtime

log = logging.getLogger("bulwark.hub")

SESSION_COOKIE = "bulwark_session"


def create_app(config: HubConfig) -> Quart:
    app = Quart("hub")
    runtime = Runtime.create(config)
    app.extensions["bulwark"] = runtime
    app.secret_key = config.resolved_secret_key()
    # The largest body any route accepts (list imports); other routes are held to
    # max_body_bytes in `_limit_body` before anything reads the body.
    app.config["MAX_CONTENT_LENGTH"] = max(config.max_import_bytes, config.max_body_bytes)

    secure = config.secure_cookies
    QuartAuth(
        app,
        cookie_name=("__Host-" if secure else "") + SESSION_COOKIE,
        cookie_secure=secure,
        cookie_http_only=True,
        cookie_samesite="Lax",
        cookie_path="/",
        cookie_domain=None,
        duration=config.session_max_age_s,
        mode="cookie",
    )
    QuartSchema(
        app,
        openapi_path="/api/v1/openapi.json",
        swagger_ui_path=None,  # hub.blueprints.docs serves it from vendored files
        redoc_ui_path=None,
        scalar_ui_path=None,
        info=Info(title="Bulwark hub API", version="1"),
        security_schemes={"token": HttpSecurityScheme(scheme="bearer", bearer_format="bwt_...")},
        security=[{"token": []}],
        openapi_provider_class=BulwarkOpenAPI,
    )
    from hub import json_bounds

    json_bounds.install(app)  # after QuartSchema, which sets its own JSON provider

    from hub.blueprints import register_all
    from hub.web import HubRequest, IntIdConverter

    app.request_class = HubRequest
    app.url_map.converters["int"] = IntIdConverter
    register_all(app)
    from hub.panel import bp as panel

    app.register_blueprint(panel)
    _install_error_handlers(app)
    _install_request_hooks(app, runtime)
    from hub.agent_asgi import AgentFastPath

    app.asgi_app = AgentFastPath(app, app.asgi_app)  # type: ignore[method-assign]  # hot agent routes skip Quart
    from hub.headers import SecurityHeaders

    app.asgi_app = SecurityHeaders(config, app.asgi_app)  # type: ignore[method-assign]  # outermost: every answer

    @app.before_serving
    async def _open() -> None:
        app.extensions["bulwark_db"] = ctx = await db.open_db(config)
        if config.should_migrate_on_start:
            await db.migrate(ctx)
        from hub.services import sealing

        await sealing.seal_legacy(runtime.sealer)  # plaintext secrets from before 0006, once
        app.extensions["bulwark_resources"] = resources = contextlib.AsyncExitStack()
        await resources.enter_async_context(runtime.listening())
        from hub.services import background

        app.extensions["bulwark_tasks"] = background.start(runtime)

    @app.after_serving
    async def _close() -> None:
        tasks: list[asyncio.Task[None]] = app.extensions.pop("bulwark_tasks", [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        resources = app.extensions.pop("bulwark_resources", None)
        if resources is not None:
            await resources.aclose()
        ctx = app.extensions.pop("bulwark_db", None)
        if ctx is not None:
            await ctx.close_connections()

    return app


def stop_waiting(app: Quart) -> None:
    """What `bulwark hub serve` does on SIGTERM or SIGINT before Hypercorn's graceful wait:
    waiting long-polls answer now and event streams end (see `Notifier.stop_waiting`);
    else the wait would run out on them and cut them with a 500."""
    app.extensions["bulwark"].notifier.stop_waiting()


def error_response(exc: HubError) -> Response:
    response = jsonify(exc.to_json())
    response.status_code = exc.status
    response.headers.update(exc.headers())
    return response


# Quart's own HTTP errors (unknown URL, malformed JSON, body too large) use the hub's codes.
HTTP_CODES = {cls.status: cls.code for cls in ClientError.__subclasses__()}


def _install_error_handlers(app: Quart) -> None:
    @app.errorhandler(HubError)
    async def _hub_error(exc: HubError) -> Response:
        if exc.status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return error_response(exc)

    @app.errorhandler(RequestSchemaValidationError)
    async def _invalid(exc: RequestSchemaValidationError) -> Response:
        return error_response(schema_error(exc.validation_error))

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.code or 0) or (exc.name or "error").lower().replace(" ", "_")
        response = jsonify({"error": code, "message": exc.description or exc.name})
        response.status_code = exc.code or 500
        for name, value in exc.get_headers():  # e.g. 405's Allow
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        response = jsonify({"error": "internal", "message": "internal error"})
        response.status_code = 500
        return response


def _install_request_hooks(app: Quart, runtime: Runtime) -> None:
    limit = runtime.config.max_body_bytes

    @app.before_request
    async def _limit_body() -> None:
        g.bulwark_started = time.perf_counter()
        view = app.view_functions.get(request.endpoint or "")
        allowed = runtime.config.max_import_bytes if getattr(view, "bulwark_bulk_body", False) else limit
        if request.content_length is not None and request.content_length > allowed:
            raise PayloadTooLarge(f"the body may have at most {allowed} bytes")
        if request.content_length is None and hasattr(request.body, "_max_content_length"):
            # Chunked upload: have Quart's body reader stop at this route's limit.
            request.body._max_content_length = allowed

    @app.after_request
    async def _count(response: Response) -> Response:
        endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
        started = g.get("bulwark_started")
        runtime.metrics.count_request(request.method, endpoint, response.status_code,
                                      None if started is None else time.perf_counter() - started)
        return response
