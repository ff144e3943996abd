"""Counted slots per key: how many long-lived answers (metrics streams, exports) a caller holds.

Why: each SSE stream holds a subscription and a database cursor for up to a day; one
token could open thousands. Per process, like the quota: N workers allow N times.
"""
from __future__ import annotations

from collections import Counter

from hub.errors import TooManyRequests


class Slot:
    def __init__(self, owner: StreamSlots, key: str) -> None:
        self._owner, self._key, self._held = owner, key, True

    def release(self) -> None:
        """Idempotent: the stream's end and its garbage collection may both call it."""
        if self._held:
            self._held = False
            self._owner._release(self._key)


class StreamSlots:
    def __init__(self) -> None:
        self.held: Counter[str] = Counter()

    def take(self, key: str, limit: int, what: str = "metrics streams") -> Slot:
        """Raises TooManyRequests when `key` holds `limit` already."""
        if self.held[key] >= limit:
            raise TooManyRequests(f"at most {limit} {what} at once; close one first", retry_after_s=5)
        self.held[key] += 1
        return Slot(self, key)

    def _release(self, key: str) -> None:
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]
