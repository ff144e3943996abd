"""Test tiers and shared fixtures.

Tiers: unmarked tests are pure and run anywhere; `@pytest.mark.kernel` tests need root
and the real kernel (BPF, XDP, netns, nftables). Where the kernel is missing they skip,
unless BULWARK_REQUIRE_KERNEL=1 (CI), where a skip would hide a failure: they fail.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI explores the same bounded examples every run, so a landing never hangs on luck;
# the dev profile draws new ones each time and finds what CI would not.
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REQUIRE_KERNEL = os.environ.get("BULWARK_REQUIRE_KERNEL") == "1"


def kernel_unavailable() -> str | None:
    """Why kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "kernel without BTF"
    try:
        import bpf  # noqa: F401  (the native bindings must be built)
        from bpf import _native  # noqa: F401
    except ImportError as exc:
        return f"native bindings not built: {exc}"
    return None


# The files that take longest (their `--durations`), run first: `make test` hands whole files
# to parallel workers in collection order, and one of these started last would end the run alone.
SLOW_FIRST = [
    "hub/test_schemathesis.py", "bench/test_smoke.py", "agent/test_kill9.py", "guard/test_differential.py", "hub/test_cli.py",
    "hub/test_list_import_bounds.py", "hub/test_backup.py", "panel/test_browser_editor.py",
    "panel/test_browser_account.py", "agent/test_confirm_revert.py", "panel/test_browser.py",
    "e2e/test_billing_e2e.py", "e2e/test_fleet.py", "agent/test_run_cli.py", "panel/test_browser_a11y.py",
    "agent/test_managed.py", "panel/test_browser_market.py", "e2e/test_demo_parts.py",
]


def _slow_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
    return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_slow_rank)  # stable: each file keeps its own order
    for item in items:
        if "kernel" not in item.keywords:
            item.add_marker(pytest.mark.pure)
    reason = kernel_unavailable()
    if reason is None:
        return
    for item in items:
        if "kernel" in item.keywords:
            if REQUIRE_KERNEL:
                item.add_marker(pytest.mark.usefixtures("_require_kernel"))
            else:
                item.add_marker(pytest.mark.skip(reason=f"kernel tests: {reason}"))


@pytest.fixture
def _require_kernel():
    pytest.fail(f"BULWARK_REQUIRE_KERNEL=1 but kernel tests cannot run: {kernel_unavailable()}")


@pytest.fixture
def veth_lab():
    """Two fresh namespaces joined by a veth pair; removed afterwards, pass or fail."""
    from tests.netlab import VethLab

    lab = VethLab.create()
    try:
        yield lab
    finally:
        lab.remove()


@pytest.fixture
def pin_dir():
    """A fresh directory on bpffs for one test's pins; emptied and removed afterwards."""
    import shutil
    import tempfile

    from bpf import ensure_bpffs

    root = ensure_bpffs()
    path = tempfile.mkdtemp(prefix="bulwark-test-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The throwaway PostgreSQL server of tests/hub/postgres.py, one per session (here, not
    in tests/hub, so the benchmarks' smoke tests reach it too)."""
    from tests.hub import postgres

    reason = postgres.unavailable()
    if reason is not None:
        if postgres.REQUIRE_POSTGRES:
            pytest.fail(f"BULWARK_REQUIRE_POSTGRES/KERNEL=1 but PostgreSQL tests cannot run: {reason}")
        pytest.skip(f"PostgreSQL tests: {reason}")
    server = postgres.PostgresServer.start()
    yield server
    server.stop()
