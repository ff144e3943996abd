"""A list's entries on the agent: the packed binary form the hub sends
(`rules_dsl.addresses.Packed`: sorted fixed-width keys per family, hosts apart from
prefixes), held as it arrived, persisted as it arrived and loaded into the guard's maps
from its buffers — about 4 MB and no Python object per entry for 1,000,000 IPv4 hosts.

`address in entries` (an `ipaddress` address) is true when a host or prefix entry
covers it, by binary search; a delta of a few entries is spliced into the sorted
tables (milliseconds for a one-entry change to a million-entry list).
"""
from __future__ import annotations

from rules_dsl.addresses import Packed as Entries
from rules_dsl.addresses import from_wire, to_wire

__all__ = ["Entries", "from_wire", "to_wire"]
