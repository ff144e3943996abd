"""`/api/v1/docs`: Swagger UI from files vendored in hub/static (no CDN, no inline script).

Why: the page loaded Swagger UI from a CDN without integrity, so whoever served that file
could run script in an operator's session. The vendored copy is pinned by its directory
name (`SWAGGER_UI`); `docs-init.js` starts it, as the CSP allows no inline script.
"""
from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, url_for
from quart_schema import hide

SWAGGER_UI = "vendor/swagger-ui-dist-5.35.0"
STATIC = Path(__file__).resolve().parent.parent / "static"

bp = Blueprint("docs", __name__, static_folder=str(STATIC), static_url_path="/static/docs")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Bulwark hub API</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


@bp.get("/api/v1/docs")
@hide
async def swagger_ui() -> Response:
    def static(name: str) -> str:
        return url_for("docs.static", filename=name)

    page = PAGE.format(css=static(f"{SWAGGER_UI}/swagger-ui.css"), icon=static(f"{SWAGGER_UI}/favicon-32x32.png"),
                       bundle=static(f"{SWAGGER_UI}/swagger-ui-bundle.js"), init=static("docs-init.js"),
                       openapi=url_for("openapi"))
    return Response(page, content_type="text/html; charset=utf-8")
