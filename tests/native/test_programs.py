"""Objects, programs and maps against the real kernel."""
from __future__ import annotations

import ctypes
import os
import socket
import struct

import pytest

from bpf import (
    MapKeyNotFound,
    NotFound,
    Object,
    VerifierRejected,
    XdpAction,
    btf_layout,
    ctypes_layout,
    possible_cpus,
)
from tests.native.conftest import BPF_TEST_DIR, configure
from tests.native.layouts import CounterConfig, CounterValue

pytestmark = pytest.mark.kernel


def udp_frame(dport: int, payload: bytes = b"hello") -> bytes:
    ip_len = 20 + 8 + len(payload)
    eth = b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", 0x0800)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0, 64, 17, 0,
                     socket.inet_aton("198.51.100.7"), socket.inet_aton("192.0.2.1"))
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0)
    return eth + ip + udp + payload


def test_layouts_match_the_compiled_btf():
    obj_path = BPF_TEST_DIR / "counter.bpf.o"
    for cls, name in ((CounterValue, "counter_value"), (CounterConfig, "counter_config")):
        assert ctypes_layout(cls, name) == btf_layout(obj_path, name)


def test_test_run_returns_the_verdict_and_a_cost(counter_object):
    configure(counter_object, port=9999, drop=True)
    prog = counter_object.program("xdp_count_a")
    assert prog.test_run(udp_frame(9999)).retval == XdpAction.DROP
    run = prog.test_run(udp_frame(53), repeat=1000)
    assert run.retval == XdpAction.PASS
    assert run.duration_ns > 0
    assert run.data == udp_frame(53)


def test_per_cpu_counters_hold_one_value_per_cpu_and_sum_right(counter_object):
    configure(counter_object, port=9999, drop=True)
    prog = counter_object.program("xdp_count_a")
    counters = counter_object.map("counters", key_type=ctypes.c_uint32, value_type=CounterValue)
    ncpus = possible_cpus()
    home = os.sched_getaffinity(0)
    runs = {cpu: 3 + 2 * cpu for cpu in sorted(home)}
    try:
        for cpu, repeat in runs.items():
            os.sched_setaffinity(0, {cpu})
            prog.test_run(udp_frame(9999), repeat=repeat)
    finally:
        os.sched_setaffinity(0, home)
    per_cpu = counters[0]
    assert len(per_cpu) == ncpus
    assert [v.packets for v in per_cpu] == [runs.get(cpu, 0) for cpu in range(ncpus)]
    assert sum(v.packets for v in per_cpu) == sum(runs.values())
    assert [v.packets for v in counters[1]] == [0] * ncpus


def test_per_cpu_values_can_be_written_per_cpu(counter_object):
    counters = counter_object.map("counters", key_type=ctypes.c_uint32, value_type=CounterValue)
    values = [CounterValue(packets=i + 1, bytes=100 * (i + 1)) for i in range(possible_cpus())]
    counters[1] = values
    assert [(v.packets, v.bytes) for v in counters[1]] == [(v.packets, v.bytes) for v in values]


def test_batch_update_of_100k_entries_reads_back_equal(counter_object):
    hosts = counter_object.map("hosts", key_type=ctypes.c_uint32, value_type=ctypes.c_uint64)
    count = 100_000
    keys = struct.pack(f"={count}I", *range(1, count + 1))
    values = struct.pack(f"={count}Q", *(k * 7 for k in range(1, count + 1)))
    assert hosts.update_batch(keys, values) == count
    raw_keys, raw_values, got = hosts.lookup_batch_raw()
    assert got == count
    read = dict(zip(struct.unpack(f"={got}I", raw_keys), struct.unpack(f"={got}Q", raw_values)))
    assert read == {k: k * 7 for k in range(1, count + 1)}
    assert hosts[4242] == 4242 * 7

    assert hosts.delete_batch(list(range(1, 1001))) == 1000
    assert 500 not in hosts and 1001 in hosts
    assert len(hosts) == count - 1000


def test_typed_single_operations_and_missing_keys(counter_object):
    hosts = counter_object.map("hosts", key_type=ctypes.c_uint32, value_type=ctypes.c_uint64)
    hosts[7] = 70
    assert hosts.get(7) == 70 and dict(hosts.items()) == {7: 70}
    del hosts[7]
    with pytest.raises(MapKeyNotFound):
        hosts.get(7)
    with pytest.raises(MapKeyNotFound):
        del hosts[7]
    assert hosts.get(7, None) is None


def test_wrong_python_layout_is_refused(counter_object):
    with pytest.raises(OSError, match="is 4 bytes, the map's is 16"):
        counter_object.map("counters", key_type=ctypes.c_uint32, value_type=ctypes.c_uint32)


def test_verifier_rejection_carries_the_log():
    with Object(BPF_TEST_DIR / "rejected.bpf.o") as obj:
        with pytest.raises(VerifierRejected) as caught:
            obj.load()
    assert "invalid access to packet" in caught.value.log
    assert caught.value.errno != 0
    assert "xdp_unchecked" in caught.value.log or "rejected.bpf.o" in str(caught.value)


def test_missing_object_file_says_so(tmp_path):
    with pytest.raises(NotFound, match="no BPF object"):
        Object(tmp_path / "nothing.bpf.o")


def test_pinned_map_reopens_with_its_contents(counter_object, pin_dir):
    hosts = counter_object.map("hosts", key_type=ctypes.c_uint32, value_type=ctypes.c_uint64)
    hosts[1] = 11
    path = os.path.join(pin_dir, "hosts")
    hosts.pin(path)
    from bpf import Map

    with Map.open_pinned(path, key_type=ctypes.c_uint32, value_type=ctypes.c_uint64) as again:
        assert again.name == "hosts" and again[1] == 11
    hosts.unpin(path)
    with pytest.raises(NotFound):
        Map.open_pinned(path)


def test_program_tags_tell_code_apart_and_open_id_finds_the_same_program(counter_object):
    from bpf import Program

    a, b = counter_object.program("xdp_count_a"), counter_object.program("xdp_count_b")
    assert len(a.tag) == 16 and a.tag != b.tag
    with Object(BPF_TEST_DIR / "counter.bpf.o") as again:
        again.load()
        assert again.program("xdp_count_a").tag == a.tag  # same code, another program
        assert again.program("xdp_count_a").id != a.id
    with Program.open_id(a.id) as same:
        assert same.id == a.id and same.tag == a.tag and same.fd != a.fd
    assert same.fd == -1
    with pytest.raises(NotFound):
        Program.open_id(0xFFFFFFF0)
