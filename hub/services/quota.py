"""Per-agent token buckets: how many metric rows an agent may send, and how fast.

Why: one agent (or a stolen credential) posting as fast as it can filled the database
and slowed every tenant's ingest. Each agent has a bucket of `capacity` rows refilled at
`rate` rows a second; a batch that does not fit is refused with the wait until it would
(429, Retry-After) and takes nothing. Held per process: with N workers an agent can get
N times the rate, which bounds it all the same.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable

from hub.errors import TooManyRequests

MAX_TRACKED = 100_000  # buckets kept; full (idle) ones are dropped first when over


@dataclasses.dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Quota:
    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self._buckets: dict[Hashable, _Bucket] = {}

    def take(self, key: Hashable, n: int) -> None:
        """Spend `n` rows of `key`'s bucket. Raises TooManyRequests."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if n > bucket.tokens:
            wait = (min(n, self.capacity) - bucket.tokens) / self.rate
            raise TooManyRequests(f"metrics quota: at most {self.rate:g} rows a second (bursts of "
                                  f"{self.capacity:g}); retry later", retry_after_s=max(1, math.ceil(wait)))
        bucket.tokens -= n

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.capacity]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]
