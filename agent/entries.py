"""A list's entries (address/prefix text), packed: one sorted, newline-joined bytes object
instead of a million str objects (~12 MB rather than ~90 MB for 1,000,000 hosts), so an
idle agent holding a big list stays small.

A hub delta of a few entries edits the packed form in place of unpacking it: each entry
is found by binary search over the lines (bytes order is the strings' order), and the
new object is one join — milliseconds and no million objects for a 1-entry change to a
1,000,000-entry list, where rebuilding through a set takes about a second and a peak of
hundreds of MB. Larger deltas take the set path.
"""
from __future__ import annotations

from collections.abc import Iterable

SMALL_DELTA = 2_000  # entries added + removed edited in the packed form; above, through a set


class Entries:
    """Immutable; iterates as str; equal to a set of the same strings."""

    __slots__ = ("_blob", "_count")

    def __init__(self, entries: Iterable[str] = ()):
        if isinstance(entries, Entries):
            self._blob, self._count = entries._blob, entries._count
            return
        unique = sorted({e.strip() for e in entries} - {""})
        self._blob = "\n".join(unique).encode()
        self._count = len(unique)

    @classmethod
    def _packed(cls, blob: bytes, count: int) -> "Entries":
        self = cls.__new__(cls)
        self._blob, self._count = blob, count
        return self

    @classmethod
    def from_text(cls, text: str) -> "Entries":
        """From `text()` as persisted (sorted, unique, newline-joined): one string in, no
        million objects on the way. A hand-edited file is at worst re-applied whole or
        refused with the bad entry named when the guard parses it."""
        return cls._packed(text.encode(), text.count("\n") + 1 if text else 0)

    def text(self) -> str:
        return self._blob.decode()

    def __iter__(self):
        return iter(self._blob.decode().split("\n") if self._count else ())

    def __len__(self) -> int:
        return self._count

    def set(self) -> frozenset[str]:
        return frozenset(self)

    def __contains__(self, entry: object) -> bool:
        return isinstance(entry, str) and _has(self._blob, entry.strip().encode())

    def present(self, candidates: Iterable[str]) -> tuple[str, ...]:
        """Those of candidates that are entries, in their order."""
        candidates = tuple(candidates)
        if len(candidates) > SMALL_DELTA:
            held = self.set()
            return tuple(c for c in candidates if c.strip() in held)
        return tuple(c for c in candidates if c in self)

    def prefixes(self) -> list[str]:
        """The entries written as prefixes (with a "/"), found by scanning the packed form
        for "/" (a list of hosts costs one fast search)."""
        blob, out = self._blob, []
        at = blob.find(b"/")
        while at >= 0:
            start = blob.rfind(b"\n", 0, at) + 1
            end = blob.find(b"\n", at)
            end = len(blob) if end < 0 else end
            out.append(blob[start:end].decode())
            at = blob.find(b"/", end)
        return out

    def changed(self, added: Iterable[str], removed: Iterable[str]) -> "Entries":
        """These entries with `removed` taken out, then `added` put in (an entry in both
        stays: the hub sends a changed expiry or comment that way)."""
        added = {e.strip() for e in added} - {""}
        removed = {e.strip() for e in removed} - added
        if len(added) + len(removed) > SMALL_DELTA:
            return Entries((self.set() - removed) | added)
        lines = self._blob + b"\n" if self._count else b""  # every line ends with a newline
        edits = []  # (offset of a line start, 0 insert / 1 remove, entry)
        for kind, group in ((0, added), (1, removed)):
            for entry in group:
                key = entry.encode()
                at = _lower_bound(lines, key)
                if _is_at(lines, key, at) == (kind == 1):  # add what is missing, remove what is there
                    edits.append((at, kind, key))
        if not edits:
            return self
        out, cur, count = [], 0, self._count
        for at, kind, key in sorted(edits):
            out.append(lines[cur:at])
            cur = at
            if kind == 0:
                out.append(key + b"\n")
                count += 1
            else:
                cur = at + len(key) + 1
                count -= 1
        out.append(lines[cur:])
        return Entries._packed(b"".join(out)[:-1] if count else b"", count)

    def __eq__(self, other) -> bool:
        if isinstance(other, Entries):
            return self._blob == other._blob
        if isinstance(other, (set, frozenset)):
            return self.set() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._blob)

    def __repr__(self) -> str:
        return f"Entries({self._count} entries)"


def _lower_bound(blob: bytes, key: bytes) -> int:
    """Offset of the first newline-separated line of blob not less than key; past the
    end when there is none."""
    lo, hi = 0, len(blob) + 1  # lines starting before lo are < key; those from hi on are >= key
    while lo < hi:
        mid = (lo + hi) // 2
        start = blob.rfind(b"\n", lo, mid) + 1 or lo  # the line holding mid (lo is a line start)
        end = blob.find(b"\n", start)
        end = len(blob) if end < 0 else end
        if blob[start:end] < key:
            lo = end + 1
        else:
            hi = start
    return lo


def _is_at(blob: bytes, key: bytes, at: int) -> bool:
    end = at + len(key)
    return blob.startswith(key, at) and (end == len(blob) or blob[end] == 10)  # 10: newline


def _has(blob: bytes, key: bytes) -> bool:
    return _is_at(blob, key, _lower_bound(blob, key))
