"""What one hub process holds while serving: config, hashers, notifier, audit, metrics.

Built by `create_app`, kept on `app.extensions["bulwark"]`, passed to services
explicitly (services never reach for the Quart app themselves).
"""
from __future__ import annotations

import contextlib
import dataclasses

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hub.config import HubConfig
from hub.security import Passwords
from hub.services.audit import AuditLog
from hub.services.notify import LocalNotifier, Notifier
from hub.services.notify_pg import PostgresNotifier, is_postgres_url
from hub.services.sealing import Sealer


# Label values for `method`: any other verb a client sends is counted as "other", so
# random methods cannot grow the number of series without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclasses.dataclass
class HubMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    pending_pushes: Gauge
    connected_agents: Gauge

    @classmethod
    def create(cls) -> HubMetrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            requests=Counter("bulwark_hub_requests", "HTTP requests", ["method", "endpoint", "status"], registry=r),
            latency=Histogram("bulwark_hub_request_seconds", "HTTP request latency", ["endpoint"], registry=r),
            pending_pushes=Gauge("bulwark_hub_pending_pushes", "Agent requests waiting for a change", registry=r),
            connected_agents=Gauge("bulwark_hub_connected_agents", "Agents seen in the last 2 minutes", registry=r),
        )

    def count_request(self, method: str, endpoint: str, status: int, seconds: float | None) -> None:
        """One answered request (Quart's hook and the agent fast path both call this)."""
        label = method if method in KNOWN_METHODS else "other"
        self.requests.labels(label, endpoint, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)


@dataclasses.dataclass
class Runtime:
    config: HubConfig
    passwords: Passwords
    notifier: Notifier
    audit: AuditLog
    metrics: HubMetrics
    sealer: Sealer

    @classmethod
    def create(cls, config: HubConfig) -> Runtime:
        return cls(
            config=config,
            passwords=Passwords(config),
            # Several processes share a PostgreSQL database, so they notify through it.
            notifier=PostgresNotifier.for_url(config.db_url) if is_postgres_url(config.db_url) else LocalNotifier(),
            audit=AuditLog(config.data_dir),
            metrics=HubMetrics.create(),
            sealer=Sealer(config.keyring_path),
        )

    def listening(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held while serving: keeps changes made by other hub processes arriving."""
        if isinstance(self.notifier, PostgresNotifier):
            return self.notifier
        return contextlib.nullcontext()
