"""Opening the database and migrating it, for the app and the CLI alike.

Each hub app owns one `TortoiseContext` (not Tortoise's process-global state), so tests
can build many apps in one process. Schema changes live in `hub/migrations/`, written
by Tortoise's own migration tool (`tortoise -c hub.db.TORTOISE_ORM makemigrations`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from tortoise.context import TortoiseContext
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.executor import MigrationExecutor

from hub import files
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


# The database is unreachable or refuses us (as opposed to a query failing). OSError
# covers refused connections and timeouts; PostgreSQL connects lazily, on first use.
_UNREACHABLE = (OSError, DBConnectionError, asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


@contextlib.contextmanager
def reaching_db() -> Iterator[None]:
    """Turns a failure to reach the database into `Unavailable`."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise Unavailable(f"cannot reach the database: {exc}") from exc


async def open_db(config: HubConfig, *, global_fallback: bool = True) -> TortoiseContext:
    """Connect; the context is made the process-wide fallback so that request tasks and
    background tasks (which do not inherit the startup task's context) find it.

    Raises `Unavailable` when the database cannot be reached.
    """
    if config.is_sqlite and config.database_url == "":
        files.private_file(Path(config.data_dir) / "hub.sqlite3")  # HubConfig.db_url; 0600 before SQLite opens it
    elif config.is_sqlite:
        files.private_dir(Path(config.data_dir))
    ctx = TortoiseContext()
    with reaching_db(), ctx:  # init needs the context active; afterwards the global fallback serves
        await ctx.init(config=tortoise_config(config.db_url), _enable_global_fallback=global_fallback)
    return ctx


async def migrate(ctx: TortoiseContext) -> None:
    """Apply every migration not yet applied (idempotent). Raises `Unavailable`."""
    executor = MigrationExecutor(ctx.db("default"), tortoise_config("")["apps"])
    with reaching_db():
        await executor.migrate()
