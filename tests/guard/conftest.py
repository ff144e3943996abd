"""Fixtures for the guard: one loaded program per module (loading costs the verifier's time)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def guard():
    from bpf.guard import Guard

    with Guard() as g:
        yield g


def guard_build(out_dir, stamp: int):
    """The guard compiled with another build stamp (GUARD_BUILD): same maps, other code,
    so another program tag. What an agent upgrade swaps in."""
    from pathlib import Path

    from cffi_build import ROOT, compile_bpf

    out = Path(out_dir) / f"guard-{stamp}.bpf.o"
    return compile_bpf(ROOT / "bpf" / "guard.bpf.c", out, {"GUARD_BUILD": str(stamp)})


@pytest.fixture(scope="session")
def guard_builds(tmp_path_factory):
    """Two builds of the guard that differ only in their stamp."""
    out = tmp_path_factory.mktemp("guard-builds")
    return guard_build(out, 1), guard_build(out, 2)
