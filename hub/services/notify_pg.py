"""Change notification across hub processes through PostgreSQL LISTEN/NOTIFY.

`publish` queues channels; one sender task per process sends what is queued as
`pg_notify('bulwark', '<channel> <channel> ...')` through the hub's database pool.
Services publish after their commit, so a listener never wakes before the change is
visible. Each process holds one dedicated asyncpg connection that LISTENs on `bulwark`
and feeds what arrives into a `LocalNotifier`, which wakes that process's waiting
requests; a process's own publishes come back to it the same way.

Invariants:
- At most one NOTIFY is in flight per process: publishes made meanwhile are sent together
  by the next one. (PostgreSQL serialises the commits of notifying transactions across
  the database, so a busy process must not send one per change.)
- A payload is channel names joined by spaces, shorter than PostgreSQL's 8000-byte
  limit; more channels go as several notifications.
- Notifications sent while the LISTEN connection is down are lost to this process, so
  each time it is (re)established every open subscription is woken and re-reads its
  state: nothing is missed, at the price of one read per waiter.
- A dropped connection is noticed by asyncpg's termination callback; a silently dead
  one (network gone) by a ping every `ping_s`. Reconnection retries every `retry_s`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connections
from tortoise.exceptions import BaseORMException

from hub.errors import Unavailable
from hub.services.notify import LocalNotifier, Subscription

log = logging.getLogger("bulwark.hub.notify")

PG_CHANNEL = "bulwark"
APPLICATION_NAME = "bulwark-hub-listen"  # how the LISTEN connection shows in pg_stat_activity
MAX_PAYLOAD_BYTES = 7999
# The LISTEN connection failed or could not be made (TimeoutError is an OSError).
_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def is_postgres_url(url: str) -> bool:
    return url.split(":", 1)[0] in {"postgres", "postgresql", "asyncpg"}


def payloads(channels: Iterable[str]) -> list[str]:
    """The notification payloads that carry `channels` (deduplicated, order kept)."""
    out: list[str] = []
    current = ""
    for channel in dict.fromkeys(channels):
        if not channel or " " in channel or len(channel.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"not a notification channel: {channel!r}")
        joined = f"{current} {channel}" if current else channel
        if len(joined.encode()) > MAX_PAYLOAD_BYTES:
            out.append(current)
            joined = channel
        current = joined
    if current:
        out.append(current)
    return out


def listen_params(db_url: str) -> dict[str, Any]:
    """asyncpg.connect arguments for the database a Tortoise URL names (pool options dropped)."""
    creds = expand_db_url(db_url)["credentials"]
    params = {k: creds[k] for k in ("host", "port", "user", "password", "database", "ssl")
              if creds.get(k) is not None}
    params["server_settings"] = {"application_name": APPLICATION_NAME}
    return params


class PostgresNotifier:
    """A `Notifier` shared by every hub process on one database. Enter it (`async with`)
    while serving: that holds the LISTEN connection and runs the sender. Entering raises
    `Unavailable` when the database cannot be reached."""

    def __init__(self, connect_params: dict[str, Any], *, retry_s: float = 1.0, ping_s: float = 15.0,
                 connect_timeout_s: float = 10.0) -> None:
        self._params = connect_params
        self._retry_s, self._ping_s, self._timeout_s = retry_s, ping_s, connect_timeout_s
        self._local = LocalNotifier()
        self._queued: dict[str, None] = {}  # channels to send, in order
        self._wake_sender = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_url(cls, db_url: str) -> PostgresNotifier:
        return cls(listen_params(db_url))

    @property
    def waiting(self) -> int:
        return self._local.waiting

    @property
    def delivered(self) -> int:
        return self._local.delivered

    def subscribe(self, channels: Iterable[str]) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._local.subscribe(channels)

    def stop_waiting(self) -> None:
        self._local.stop_waiting()

    async def publish(self, *channels: str) -> None:
        """Queue a NOTIFY of `channels` to every hub process. Outside `async with` (no
        sender running: the CLI) it is sent at once."""
        if not self._tasks:
            await self._notify(channels)
            return
        self._queued.update(dict.fromkeys(channels))
        self._wake_sender.set()

    async def _notify(self, channels: Iterable[str]) -> None:
        """A failure is logged, not raised: the changes are committed, and agents see them
        on their next poll at the latest."""
        conn = get_connections().get("default")
        try:
            for payload in payloads(channels):
                await conn.execute_query("SELECT pg_notify($1, $2)", [PG_CHANNEL, payload])
        except (BaseORMException, OSError) as exc:
            log.warning("could not notify %s: %s", " ".join(channels), exc)

    async def _send(self) -> None:
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            channels, self._queued = self._queued, {}
            try:
                await self._notify(channels)
            except asyncio.CancelledError:  # stopping: __aexit__ sends what is left
                self._queued = {**channels, **self._queued}
                raise
            except Exception:  # never let one bad send stop every later one
                log.exception("notify failed")

    async def __aenter__(self) -> PostgresNotifier:
        try:
            conn = await self._listen()
        except _LOST as exc:
            raise Unavailable(f"cannot LISTEN for changes: {exc}") from exc
        self._tasks = [asyncio.create_task(self._supervise(conn), name="bulwark:listen"),
                       asyncio.create_task(self._send(), name="bulwark:notify")]
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._queued:  # what was queued before the sender stopped
            channels, self._queued = self._queued, {}
            await self._notify(channels)

    async def _listen(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(timeout=self._timeout_s, **self._params)
        try:
            await conn.add_listener(PG_CHANNEL, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        # LISTEN is live: whatever changed while nobody listened is caught by a re-read.
        self._local.deliver_all()
        return conn

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._local.deliver(*payload.split())

    async def _supervise(self, conn: asyncpg.Connection) -> None:
        while True:
            try:
                await self._hold(conn)
            except _LOST as exc:
                log.warning("LISTEN connection failed: %s", exc)
            finally:
                conn.terminate()
            conn = await self._reconnect()

    async def _hold(self, conn: asyncpg.Connection) -> None:
        """Return when the connection is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), self._ping_s)
            except TimeoutError:
                await conn.execute("SELECT 1", timeout=self._ping_s)
        log.warning("LISTEN connection lost; reconnecting")

    async def _reconnect(self) -> asyncpg.Connection:
        while True:
            await asyncio.sleep(self._retry_s)
            try:
                conn = await self._listen()
            except _LOST as exc:
                log.warning("LISTEN reconnect failed: %s", exc)
                continue
            log.info("LISTEN connection re-established")
            return conn
