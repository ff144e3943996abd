"""Hub tests run on asyncio (Quart, Tortoise), next to the trio-mode tests of the agent.

pytest-trio's trio_mode marks every `async def` test as a trio test. Here, after it has
done so, the mark is taken off tests in this folder and they are run with `asyncio.run`
instead. Fixtures stay synchronous; a fixture value that is an `InLoop` (an async context
manager) is entered inside the test's event loop and the test receives what it yields.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
from pathlib import Path

import pytest

from tests.hub.harness import HubHarness, InLoop

HERE = Path(__file__).parent


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


@pytest.fixture
def hub(tmp_path) -> HubHarness:
    return HubHarness(tmp_path)
