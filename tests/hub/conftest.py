"""Hub tests run on asyncio (Quart, Tortoise), next to the trio-mode tests of the agent.

pytest-trio's trio_mode marks every `async def` test as a trio test. Here, after it has
done so, the mark is taken off tests in this folder and they are run with `asyncio.run`
instead. Fixtures stay synchronous; a fixture value that is an `InLoop` (an async context
manager) is entered inside the test's event loop and the test receives what it yields.

Tests in the modules of `BOTH_BACKENDS` run twice, on SQLite and on PostgreSQL (a server
started once per session by tests/hub/postgres.py, a fresh database per harness); any
test may instead parametrize `backend` itself (indirect=True).
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from tests.hub.anthropic_fake import AnthropicFake
from tests.hub.harness import HubHarness, InLoop

HERE = Path(__file__).parent
BOTH_BACKENDS = {"test_models", "test_lists", "test_panel_scale", "test_manage", "test_deploy", "test_agents",
                 "test_isolation", "test_metrics", "test_auth", "test_billing", "test_marketplace", "test_suggest",
                 "test_list_deletion"}


def _is_hub_async(item: pytest.Item) -> bool:
    return (
        isinstance(item, pytest.Function)
        and Path(str(item.path)).is_relative_to(HERE)
        and inspect.iscoroutinefunction(item.function)
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_hub_async(item):
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not _is_hub_async(pyfuncitem):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}

    async def run():
        async with contextlib.AsyncExitStack() as stack:
            for name, value in kwargs.items():
                if isinstance(value, InLoop):
                    kwargs[name] = await stack.enter_async_context(value)
            await pyfuncitem.obj(**kwargs)

    asyncio.run(run())
    return True


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "backend" in metafunc.fixturenames and module in BOTH_BACKENDS:
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    """The hub's database for this test: "sqlite" unless parametrized (or asked for)."""
    # Tortoise caches each model's INSERT/UPDATE SQL by connection name and table, not by
    # dialect; one process serves one backend, but this one switches between tests.
    EXECUTOR_CACHE.clear()
    name = getattr(request, "param", "sqlite")
    if name != "postgres":
        yield name
        return
    server = request.getfixturevalue("postgres_server")
    HubHarness.postgres = server
    try:
        yield name
    finally:
        HubHarness.postgres = None
        server.drop_created()


@pytest.fixture
def hub(tmp_path, backend) -> HubHarness:
    return HubHarness(tmp_path)


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    """The loopback stand-in for Anthropic's /v1/messages that the real client talks to."""
    with AnthropicFake() as f:
        yield f
