"""Fixtures for the guard: one loaded program per module (loading costs the verifier's time)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def guard():
    from bpf.guard import Guard

    with Guard() as g:
        yield g
