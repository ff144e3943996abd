"""A blueprint per area; `register_all` wires them onto the app."""
from __future__ import annotations

from quart import Quart


def register_all(app: Quart) -> None:
    from hub.blueprints import auth, ops, tenants

    for module in (ops, auth, tenants):
        app.register_blueprint(module.bp)
    from hub.blueprints import optional_areas

    optional_areas.register(app)
