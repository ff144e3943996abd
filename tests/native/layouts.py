"""Python mirrors of tests/bpf/counter.h."""
import ctypes


class CounterConfig(ctypes.Structure):
    _fields_ = [("watch_port", ctypes.c_uint16), ("drop", ctypes.c_uint8),
                ("pad", ctypes.c_uint8), ("reserved", ctypes.c_uint32)]


class CounterValue(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]
