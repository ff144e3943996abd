"""A list's entries on the agent: the packed binary form the hub sends
(`rules_dsl.addresses.Packed`: sorted fixed-width keys per family, hosts apart from
prefixes), held as it arrived, persisted as it arrived and loaded into the guard's maps
from its buffers — about 4 MB and no Python object per entry for 1,000,000 IPv4 hosts.

`address in entries` (an `ipaddress` address) is true when a host or prefix entry
covers it, by binary search; a delta of a few entries is spliced into the sorted
tables (milliseconds for a one-entry change to a million-entry list).
"""
from __future__ import annotations

import base64
import binascii

from rules_dsl.addresses import Packed as Entries
from rules_dsl.errors import AddressError

__all__ = ["Entries", "from_wire", "to_wire"]


def from_wire(text: object) -> Entries:
    """Entries from the protocol's and the state file's form (base64 of the packed form).

    Raises AddressError when it is not that."""
    if not isinstance(text, str):
        raise AddressError(f"a packed list is a base64 string, not {type(text).__name__}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AddressError("a packed list is not valid base64") from None
    return Entries.from_bytes(data)


def to_wire(entries: Entries) -> str:
    return base64.b64encode(entries.to_bytes()).decode("ascii")
