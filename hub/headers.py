"""Security headers on every answer the hub sends, Quart's and the agent fast path's alike.

`SecurityHeaders` is the outermost ASGI layer, so no route (panel, API, docs, agent
protocol, errors) can forget them. A header a route sets itself is left as it is.

- CSP: nothing inline and nothing from elsewhere (`script-src 'self'`), no plugins, no
  framing, no <base>, forms only to the hub; Swagger UI and the panel are files on the hub.
- `Cache-Control: no-store` on every dynamic answer: tokens, join tokens, recovery codes
  and session answers must never sit in a browser or proxy cache. Static files
  (`STATIC_PREFIXES`) stay cacheable.
- HSTS only when `public_url` is https (a plain-http demo on loopback must stay reachable).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from hub.config import HubConfig

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HSTS = "max-age=31536000; includeSubDomains"
STATIC_PREFIXES = ("/static/",)
NO_STORE = (b"cache-control", b"no-store")


def security_headers(config: HubConfig) -> tuple[tuple[bytes, bytes], ...]:
    headers = {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin",
    }
    if urlsplit(config.public_url).scheme == "https":
        headers["strict-transport-security"] = HSTS
    return tuple((name.encode(), value.encode()) for name, value in headers.items())


class SecurityHeaders:
    """ASGI: adds `security_headers` (and no-store off the static paths) to each answer."""

    def __init__(self, config: HubConfig, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner
        self.headers = security_headers(config)

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        cacheable = scope["path"].startswith(STATIC_PREFIXES)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self.headers if h[0] not in present]
                if not cacheable and b"cache-control" not in present:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, send_with_headers)
