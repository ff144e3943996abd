"""Opening the database and migrating it, for the app and the CLI alike.

Each hub app owns one `TortoiseContext` (not Tortoise's process-global state), so tests
can build many apps in one process. Schema changes live in `hub/migrations/`, written
by Tortoise's own migration tool (`tortoise -c hub.db.TORTOISE_ORM makemigrations`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

from hub.config import HubConfig
from hub.errors import Unavailable
from hub.models import MODEL_MODULES


def tortoise_config(db_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": db_url},
        "apps": {
            "hub": {
                "models": MODEL_MODULES,
                "migrations": "hub.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# For Tortoise's command line (makemigrations) only.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


async def open_db(config: HubConfig, *, global_fallback: bool = True) -> TortoiseContext:
    """Connect; the context is made the process-wide fallback so that request tasks and
    background tasks (which do not inherit the startup task's context) find it.

    Raises `Unavailable` when the database cannot be reached.
    """
    if config.is_sqlite:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    ctx = TortoiseContext()
    try:
        with ctx:  # init needs the context active; afterwards the global fallback serves
            await ctx.init(config=tortoise_config(config.db_url), _enable_global_fallback=global_fallback)
    except OSError as exc:
        raise Unavailable(f"cannot open the database: {exc}") from exc
    return ctx


async def migrate(ctx: TortoiseContext) -> None:
    """Apply every migration not yet applied (idempotent)."""
    executor = MigrationExecutor(ctx.db("default"), tortoise_config("")["apps"])
    await executor.migrate()
