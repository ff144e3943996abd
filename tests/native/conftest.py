"""Fixtures for the native layer: the test programs compiled by cffi_build.py."""
from __future__ import annotations

from pathlib import Path

import pytest

BPF_TEST_DIR = Path(__file__).resolve().parent.parent / "bpf"


@pytest.fixture
def counter_object():
    """tests/bpf/counter.bpf.o, loaded; closed afterwards."""
    from bpf import Object

    with Object(BPF_TEST_DIR / "counter.bpf.o") as obj:
        yield obj.load()


def configure(obj, *, port: int, drop: bool) -> None:
    import socket

    from tests.native.layouts import CounterConfig

    config = obj.map("config", key_type=__import__("ctypes").c_uint32, value_type=CounterConfig)
    config[0] = CounterConfig(watch_port=socket.htons(port), drop=int(drop))
