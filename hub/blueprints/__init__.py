"""A blueprint per area; `register_all` wires them onto the app, each named here."""
from __future__ import annotations

from quart import Quart


def register_all(app: Quart) -> None:
    from hub.blueprints import (
        account, agent_protocol, agents, alerts, assistant, audit, auth, billing, captures, deployments, docs, install,
        library, lists, marketplace, metrics, ops, policies, privacy, replay, tenants,
    )

    for module in (ops, auth, account, tenants, agents, agent_protocol, policies, deployments, lists, metrics, audit,
                   alerts, billing, privacy, marketplace, library, assistant, replay, captures, docs, install):
        app.register_blueprint(module.bp)
