"""The web panel: server-rendered pages over the same services the API uses.

Every page works without JavaScript; static/live.js and static/editor.js only enhance.
No inline script or style anywhere, so the hub's strict CSP holds (tests/panel check it).

Access goes through hub.web exactly as the API's does: `principal()` (which also checks
the form's `csrf_token` on every POST) and `resolve_scope`. Errors become HTML here: an
unauthenticated visitor is sent to the sign-in page, anything else gets an error page.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

from quart import Blueprint, Response, redirect, render_template, request, url_for

from hub.errors import HubError, SecondFactorRequired, ServerError, Unauthenticated

log = logging.getLogger("bulwark.hub.panel")

bp = Blueprint("panel", __name__, template_folder="templates", static_folder="static",
               static_url_path="/panel/static")

PANEL_COOKIE = "bulwark_panel"  # Quart's signed session: flash messages and the sign-in form's token


@bp.record_once
def _set_up(state) -> None:  # noqa: ANN001 (Quart's BlueprintSetupState)
    config = state.app.extensions["bulwark"].config
    secure = config.secure_cookies
    state.app.config.update(
        SESSION_COOKIE_NAME=("__Host-" if secure else "") + PANEL_COOKIE,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None,
    )


def safe_next(target: str | None) -> str:
    """Only a path on this site: `//evil.example` or `https://...` would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("panel.home")
    return target


@bp.errorhandler(HubError)
async def _hub_error(exc: HubError) -> Response | tuple[str, int]:
    if isinstance(exc, Unauthenticated):
        return redirect(url_for("panel.login", next=request.full_path.rstrip("?")))
    if isinstance(exc, SecondFactorRequired):  # until 2FA is on, the set-up is the only way on
        return redirect(url_for("panel.account") + "#totp-h")
    if exc.status >= 500:
        log.error("panel request failed: %s", exc, exc_info=exc)
    return await render_template("panel/error.html", error=exc), exc.status


@bp.errorhandler(Exception)
async def _unexpected(exc: Exception) -> tuple[str, int]:
    """A bug: logged with its traceback, and the person gets a page, not JSON or a trace."""
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):  # Quart's own (405, 413...): the person's mistake, no trace
        shown = SimpleNamespace(status=exc.code or 400, message=exc.description or exc.name, details=None)
        return await render_template("panel/error.html", error=shown), exc.code or 400
    log.exception("panel: unhandled error")
    return await render_template("panel/error.html", error=ServerError("internal error")), 500


from hub.panel import (  # noqa: E402,F401  (they add their routes to bp)
    account, assist, billing, dashboard, editor_pages, list_pages, market, nav, pages, people, privacy, signin,
    welcome,
)
