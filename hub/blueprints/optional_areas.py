"""Areas added step by step; each registers if its module exists."""
from __future__ import annotations

import importlib

from quart import Quart

AREAS = ["agents", "agent_protocol", "policies", "deployments", "lists", "metrics", "audit"]


def register(app: Quart) -> None:
    for name in AREAS:
        try:
            module = importlib.import_module(f"hub.blueprints.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hub.blueprints.{name}":
                raise
            continue
        app.register_blueprint(module.bp)
