"""BPF objects and programs: open a compiled `.bpf.o`, load it, run its programs.

An `Object` is the live, fd-backed counterpart of an object file: it owns its programs
and maps and releases them on `close()` (it is a context manager). Pinned maps and
links outlive it; everything else goes with it.
"""
from __future__ import annotations

import enum
import errno
import os
from dataclasses import dataclass
from typing import Any

from bpf._lib import ffi, lib
from bpf.errors import BpfError, NotFound, VerifierRejected, check, error_for
from bpf.maps import Map

LOG_SIZE = 16 * 1024 * 1024  # the verifier's log on a failed load; allocated only then


class XdpAction(enum.IntEnum):
    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


@dataclass(frozen=True)
class TestRun:
    """What one BPF_PROG_TEST_RUN returned."""

    retval: int
    duration_ns: int  # average per repetition, as the kernel measured it
    data: bytes  # the packet as the program left it


class Program:
    """A loaded program, valid while its Object is open, or (from `open_id`) one this
    process holds by its own fd until `close()`."""

    def __init__(self, name: str, fd: int, *, owned: bool = False):
        self.name = name
        self.fd = fd
        self._owned = owned

    @classmethod
    def open_id(cls, prog_id: int) -> "Program":
        """A program already in the kernel (e.g. the one a link runs), by id. Raises
        NotFound when no program has that id any more."""
        fd = check(lib.bpf_prog_get_fd_by_id(prog_id), f"open program {prog_id}")
        return cls(f"prog#{prog_id}", fd, owned=True)

    @property
    def id(self) -> int:
        out = ffi.new("uint32_t *")
        check(lib.bw_prog_id(self.fd, out), f"{self.name}: read program id")
        return out[0]

    @property
    def tag(self) -> str:
        """The kernel's hash of the program's instructions (hex): two builds of the guard
        run the same code exactly when their tags are equal."""
        out = ffi.new("uint8_t[8]")
        check(lib.bw_prog_tag(self.fd, out), f"{self.name}: read program tag")
        return bytes(out).hex()

    def close(self) -> None:
        """Release an fd from `open_id` (an Object's programs go with the Object)."""
        if self._owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Program":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def test_run(self, data: bytes, repeat: int = 1, *, data_out_size: int | None = None) -> TestRun:
        """Run the program on `data` in the kernel (BPF_PROG_TEST_RUN), `repeat` times.

        Raises BpfError when the kernel refuses the run (e.g. a frame shorter than 14 bytes).
        """
        out_size = data_out_size if data_out_size is not None else len(data) + 256
        data_out = ffi.new("char[]", max(out_size, 1))
        opts = ffi.new("struct bpf_test_run_opts *")
        opts.sz = ffi.sizeof("struct bpf_test_run_opts")
        data_in = ffi.from_buffer(data)
        opts.data_in = data_in
        opts.data_size_in = len(data)
        opts.data_out = data_out
        opts.data_size_out = out_size
        opts.repeat = repeat
        check(lib.bpf_prog_test_run_opts(self.fd, opts), f"{self.name}: test run")
        return TestRun(opts.retval, opts.duration, ffi.buffer(data_out, opts.data_size_out)[:])

    def __repr__(self) -> str:
        return f"<Program {self.name} fd={self.fd}>"


class Object:
    """A BPF object file, opened and (after `load()`) in the kernel.

    `pin_root`: maps declared with LIBBPF_PIN_BY_NAME are pinned there, and reused when
    already pinned, so their contents survive the process (what fail-static needs).

    Raises: NotFound when the file is missing, BpfError when libbpf cannot open it,
    VerifierRejected (with the verifier's log) when the kernel refuses a program.
    """

    def __init__(self, path: str | os.PathLike, *, pin_root: str | os.PathLike | None = None):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise NotFound(errno.ENOENT, f"no BPF object at {self.path}")
        self._log = ffi.new("char[]", LOG_SIZE)
        self._pin_root = ffi.new("char[]", os.fsencode(pin_root)) if pin_root else ffi.NULL
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        opts.kernel_log_buf = self._log
        opts.kernel_log_size = LOG_SIZE
        opts.kernel_log_level = 0  # libbpf asks the kernel for a log only when a load fails
        opts.pin_root_path = self._pin_root
        self._obj = lib.bpf_object__open_file(os.fsencode(self.path), opts)
        if self._obj == ffi.NULL:
            raise error_for(ffi.errno, f"open BPF object {self.path}")
        self.loaded = False
        self._maps: dict[str, Map] = {}

    # ---- before load ----
    def _map_ptr(self, name: str):
        ptr = lib.bpf_object__next_map(self._obj, ffi.NULL)
        while ptr != ffi.NULL:
            if ffi.string(lib.bpf_map__name(ptr)).decode() == name:
                return ptr
            ptr = lib.bpf_object__next_map(self._obj, ptr)
        raise NotFound(errno.ENOENT, f"{self.path}: no map named {name!r}")

    def set_max_entries(self, name: str, max_entries: int) -> None:
        """Size a map before load (e.g. a deny list for the entries it will hold)."""
        check(lib.bpf_map__set_max_entries(self._map_ptr(name), max_entries),
              f"{name}: set max entries")

    def map_layout(self, name: str) -> tuple[int, int, int]:
        """(type, key size, value size) of map `name` as this object declares it."""
        ptr = self._map_ptr(name)
        return (lib.bpf_map__type(ptr), lib.bpf_map__key_size(ptr), lib.bpf_map__value_size(ptr))

    def reuse_map(self, name: str, existing: Map) -> None:
        """Make this object use an existing map (shared state between programs)."""
        check(lib.bpf_map__reuse_fd(self._map_ptr(name), existing.fd), f"{name}: reuse fd")

    def disable_pinning(self) -> None:
        """Keep maps the object asks to pin by name unpinned (e.g. a peer program loaded
        for comparison must not leave pins under /sys/fs/bpf)."""
        ptr = lib.bpf_object__next_map(self._obj, ffi.NULL)
        while ptr != ffi.NULL:
            check(lib.bpf_map__set_pin_path(ptr, ffi.NULL), "clear pin path")
            ptr = lib.bpf_object__next_map(self._obj, ptr)

    # ---- load ----
    def load(self) -> "Object":
        """Load every program and create (or reuse pinned) maps.

        Raises VerifierRejected with the verifier's log when a program is refused.
        """
        rc = lib.bpf_object__load(self._obj)
        if rc < 0:
            log = ffi.string(self._log).decode(errors="replace")
            if log:
                raise VerifierRejected(os.path.basename(self.path), -rc, log) from OSError(
                    -rc, os.strerror(-rc))
            check(rc, f"load {self.path}")
        self.loaded = True
        self._log = None  # 16 MiB we no longer need
        return self

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise BpfError(errno.EINVAL, f"{self.path}: load() the object first")

    @property
    def programs(self) -> dict[str, Program]:
        self._require_loaded()
        out = {}
        ptr = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while ptr != ffi.NULL:
            name = ffi.string(lib.bpf_program__name(ptr)).decode()
            out[name] = Program(name, lib.bpf_program__fd(ptr))
            ptr = lib.bpf_object__next_program(self._obj, ptr)
        return out

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise NotFound(errno.ENOENT, f"{self.path}: no program named {name!r}") from None

    def map(self, name: str, *, key_type: Any = None, value_type: Any = None) -> Map:
        """The loaded map `name`, seen through the given ctypes key/value types."""
        self._require_loaded()
        ptr = self._map_ptr(name)
        return Map(lib.bpf_map__fd(ptr), name, lib.bpf_map__type(ptr), lib.bpf_map__key_size(ptr),
                   lib.bpf_map__value_size(ptr), lib.bpf_map__max_entries(ptr),
                   key_type=key_type, value_type=value_type)

    @property
    def map_names(self) -> list[str]:
        names = []
        ptr = lib.bpf_object__next_map(self._obj, ffi.NULL)
        while ptr != ffi.NULL:
            names.append(ffi.string(lib.bpf_map__name(ptr)).decode())
            ptr = lib.bpf_object__next_map(self._obj, ptr)
        return names

    # ---- lifetime ----
    def close(self) -> None:
        """Release programs and maps (pinned ones and attached links stay in the kernel)."""
        if getattr(self, "_obj", None) is not None:
            lib.bpf_object__close(self._obj)
            self._obj = None
            self.loaded = False

    def __enter__(self) -> "Object":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
