"""Change notification: wakes the agents' waiting requests when their state changes.

`Notifier` is the interface; `LocalNotifier` serves one hub process. On PostgreSQL,
`hub.services.notify_pg.PostgresNotifier` replaces it by turning `publish` into
`NOTIFY bulwark, '<channels>'` and feeding its `LISTEN` connection's notifications into
`LocalNotifier.deliver`, so that any hub process can wake any agent's request.

Channels are plain strings: `tenant:<id>` (tenant-wide: lists, suspension),
`agent:<id>` (one agent's deployment or enablement), `metrics:<tenant id>`.

Waiting is race-free when the caller subscribes *before* reading the state it waits on:
a publish between the read and the wait still sets the subscription's flag. Publishing
is race-free when it follows the commit of the change (never inside a transaction): a
waiter woken earlier would re-read the old state and wait on.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Protocol


ALL = "*"  # in `Subscription.fired`: a wake for every channel (changes may have been missed)


class Subscription:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.superseded = False  # a newer request of the same waiter took over
        self._pending: set[str] = set()
        # The channels behind the last wake `wait` returned (ALL: any of them may have changed).
        # A waiter of a tenant-wide change reuses what it read of its own, unchanged row.
        self.fired: frozenset[str] = frozenset()

    def _fire(self, channel: str = ALL) -> None:
        self._pending.add(channel)
        self._event.set()

    def supersede(self) -> None:
        """Wake the waiter for good: it answers at once and leaves the turn to the newer one."""
        self.superseded = True
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True when a change arrived (since subscribing or the last wait), False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):  # no task a wait, as wait_for made
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        self.fired, self._pending = frozenset(self._pending), set()
        return True


class Notifier(Protocol):
    async def publish(self, *channels: str) -> None: ...

    def subscribe(self, channels: Iterable[str]) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    @property
    def waiting(self) -> int: ...

    @property
    def delivered(self) -> int: ...

    def stop_waiting(self) -> None: ...


class LocalNotifier:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._count = 0
        self._stopping = False
        # Wakes delivered so far (any channel): a reader that saw the same number before
        # its read and after subscribing knows no change was published in between.
        self.delivered = 0

    @property
    def waiting(self) -> int:
        """Open subscriptions (the Prometheus gauge of pending pushes)."""
        return self._count

    async def publish(self, *channels: str) -> None:
        self.deliver(*channels)

    def deliver(self, *channels: str) -> None:
        self.delivered += 1
        for channel in channels:
            for sub in self._subs.get(channel, ()):
                sub._fire(channel)

    def deliver_all(self) -> None:
        """Wake every subscription: for when changes may have been missed. A waiter
        re-reads its state on waking, so a wake without a change costs one read."""
        self.delivered += 1
        for subs in self._subs.values():
            for sub in subs:
                sub._fire()

    def stop_waiting(self) -> None:
        """The process is stopping: every waiter is superseded now (a long-poll answers
        "no change", an event stream ends), and so is every one that subscribes later,
        so none holds the shutdown until its own timeout. Agents and browsers then ask
        again, of another process or of this one once it is back."""
        self._stopping = True
        for subs in self._subs.values():
            for sub in subs:
                sub.supersede()

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[Subscription]:
        sub = Subscription()
        if self._stopping:
            sub.supersede()
        channels = list(channels)
        for channel in channels:
            self._subs.setdefault(channel, set()).add(sub)
        self._count += 1
        try:
            yield sub
        finally:
            self._count -= 1
            for channel in channels:
                subs = self._subs.get(channel)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subs[channel]
