"""Errors of the `bpf` package: the kernel and libraries saying no, translated.

    BpfError(OSError)            errno kept; raised `from` the libbpf/syscall failure
    ├── NotFound                 ENOENT: no such key, pin or program
    │   └── MapKeyNotFound       a lookup/delete of a key that is not in the map
    ├── AlreadyExists            EEXIST: key present with BPF_NOEXIST, pin path taken
    ├── NoSpace                  E2BIG/ENOSPC: map full, buffer too small
    ├── NotSupported             EOPNOTSUPP/ENOTSUPP: this kernel or device cannot
    ├── VerifierRejected         the verifier refused a program; `.log` is its log
    └── NftError                 libnftables refused a command; message is nft's own

Whose fault: VerifierRejected and NftError are bad input (our program or ruleset);
the others are the world (kernel limits, missing pins, unsupported features).
"""
from __future__ import annotations

import errno as _errno
import os

ENOTSUPP = 524  # the kernel's internal "not supported", leaked by some BPF paths


class BpfError(OSError):
    """A BPF or nftables operation failed; `errno` says how."""


class NotFound(BpfError):
    pass


class MapKeyNotFound(NotFound, KeyError):
    pass


class AlreadyExists(BpfError):
    pass


class NoSpace(BpfError):
    pass


class NotSupported(BpfError):
    pass


class VerifierRejected(BpfError):
    """The verifier refused the program; `log` holds what it said (its last lines tell why)."""

    def __init__(self, program: str, err: int, log: str):
        super().__init__(err, f"verifier rejected {program}: {last_lines(log)}")
        self.program = program
        self.log = log


class NftError(BpfError):
    """libnftables refused a command; the message is nft's own error text."""

    def __init__(self, message: str):
        super().__init__(_errno.EINVAL, message.strip() or "nftables command failed")


def last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no log)"


_BY_ERRNO = {
    _errno.ENOENT: NotFound,
    _errno.EEXIST: AlreadyExists,
    _errno.E2BIG: NoSpace,
    _errno.ENOSPC: NoSpace,
    _errno.EOPNOTSUPP: NotSupported,
    ENOTSUPP: NotSupported,
}


def error_for(err: int, what: str) -> BpfError:
    """The right BpfError subclass for a (positive) errno, naming the failed operation."""
    err = abs(err)
    cls = _BY_ERRNO.get(err, BpfError)
    reason = "operation not supported" if err == ENOTSUPP else os.strerror(err)
    return cls(err, f"{what}: {reason}")


def check(rc: int, what: str, cls: type[BpfError] | None = None) -> int:
    """Return rc when it is not negative, else raise the error for -rc (libbpf's convention)."""
    if rc >= 0:
        return rc
    err = error_for(-rc, what)
    if cls is not None and not isinstance(err, cls):
        err = cls(-rc, str(err))
    raise err from OSError(-rc, os.strerror(-rc))
