from __future__ import annotations

import inspect

from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector

from hub import models
from hub.db import tortoise_config


def test_model_docstrings_have_no_semicolons():
    # Tortoise turns docstrings into table comments and splits SQLite DDL on ';'.
    for name in models.__all__:
        obj = getattr(models, name)
        if inspect.isclass(obj):
            assert ";" not in (obj.__doc__ or ""), name


async def test_migrations_match_the_models():
    config = tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    assert writers == [], "models changed: run `tortoise -c hub.db.TORTOISE_ORM makemigrations hub`"


async def test_migrate_is_idempotent_and_creates_the_schema(hub):
    from hub import db

    ctx = hub.app.extensions["bulwark_db"]
    await db.migrate(ctx)  # a second time: nothing to do, no error
    await hub.rt.audit.append(actor="test", action="x")
    checked, problems = await hub.rt.audit.verify()
    assert (checked, problems) == (1, [])


def test_the_migrations_form_one_line_each_after_the_one_before():
    """Branches that each added a migration after the same parent would leave two heads:
    every migration names the one numbered just before it, and no two share a number."""
    import importlib
    import pkgutil

    import hub.migrations

    names = sorted(m.name for m in pkgutil.iter_modules(hub.migrations.__path__))
    assert len({name[:4] for name in names}) == len(names), names
    for before, name in zip(names, names[1:]):
        migration = importlib.import_module(f"hub.migrations.{name}").Migration
        assert migration.dependencies == [("hub", before)], (name, migration.dependencies)
