"""Shared parts of the hub benchmarks: a hub in its own process (Hypercorn on loopback),
the rows a run needs made directly in its database, and a minimal HTTP/1.1 client.

The simulated agents run in the benchmark's process and the hub in another, as on a
real network: the clients' own work does not slow the hub's event loop, and the
client is a few lines over asyncio streams (one connection per agent), because a
general HTTP client's connection pool costs more per request than the hub does.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hub.config import HubConfig, load_config


BENCH_PASSWORD = "bench password 123"


def bench_config(data_dir: str, database_url: str = "", **kw: Any) -> HubConfig:
    return load_config(env={}, data_dir=data_dir, database_url=database_url, argon2_memory_kib=1024,
                       argon2_time_cost=1, long_poll_max_s=300, migrate_on_start="yes", **kw)


@dataclass
class Setup:
    tenant_id: uuid.UUID
    api_token: str
    credentials: list[str]
    email: str = ""  # the tenant owner's (password BENCH_PASSWORD), for benches that sign in
    otpauth: str = ""  # the owner's second factor (every account needs one to sign in)


async def prepare(config: HubConfig, n_agents: int) -> Setup:
    """A tenant, an API token and `n_agents` enrolled agents, made straight in the database."""
    from hub import db
    from hub.models import Agent
    from hub.runtime import Runtime
    from hub.security import make_credential
    from hub.services import accounts, tenants
    from hub.services.scope import Principal, resolve_scope

    ctx = await db.open_db(config)
    try:
        await db.migrate(ctx)
        rt = Runtime.create(config)
        user = await accounts.create_user(rt, f"bench-{uuid.uuid4().hex[:8]}@example.com", BENCH_PASSWORD)
        otpauth, _ = await accounts.enrol_totp(rt, user)
        owner = Principal(actor="user:bench", user_id=user.id)
        tenant = await tenants.create_tenant(rt, owner, "bench")
        scope = await resolve_scope(owner, tenant.id, "admin")
        _, api_token = await tenants.create_token(rt, scope, "bench", ["read", "write"], None)
        creds, rows = [], []
        for _ in range(n_agents):
            agent_id = uuid.uuid4()
            cred, h = make_credential("bwa", agent_id)
            creds.append(cred)
            rows.append(Agent(id=agent_id, tenant_id=tenant.id, credential_hash=h, hostname="sim"))
        await Agent.bulk_create(rows, batch_size=500)
    finally:
        await ctx.close_connections()
    return Setup(tenant.id, api_token, creds, user.email, otpauth)


def serve_forever(data_dir: str, database_url: str, port: int) -> None:
    """The hub process: `python bench/hubsim.py DATA_DIR DATABASE_URL PORT`."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    from hub import event_loop
    from hub.app import create_app
    from hub.gc_tuning import tune_for_serving

    hc = HypercornConfig()
    hc.bind = [f"127.0.0.1:{port}"]
    hc.accesslog = None
    hc.errorlog = None
    hc.backlog = 16384
    hc.keep_alive_timeout = 600
    app = create_app(bench_config(data_dir, database_url))
    tune_for_serving()  # as `bulwark-hub serve` does
    profile = os.environ.get("HUBSIM_PROFILE")  # a path: write the hub's cProfile stats there
    if not profile:
        event_loop.run(serve(app, hc))  # as `bulwark hub serve` runs it
        return
    import cProfile
    import signal

    stop = asyncio.Event()
    profiler = cProfile.Profile()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        # Profiled only between SIGUSR1 and SIGUSR2 (`profiled`): the timed part of a
        # round, not the set-up and the shutdown.
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
        await serve(app, hc, shutdown_trigger=stop.wait)

    event_loop.run(run())
    profiler.dump_stats(f"{profile}.{os.getpid()}")  # one file a hub process


def new_config(database_url: str = "") -> HubConfig:
    """A fresh data directory (SQLite there unless `database_url` names PostgreSQL)."""
    return bench_config(tempfile.mkdtemp(prefix="bulwark-bench-"), database_url)


@contextlib.asynccontextmanager
async def started(config: HubConfig, port: int, processes: int = 1) -> AsyncIterator[Hubs]:
    """The hub serving `config` in `processes` child processes on 127.0.0.1, ports `port`,
    `port + 1`, ... (as behind a load balancer), until exit."""
    logs, procs = [], []
    try:
        for i in range(processes):
            log = open(os.path.join(config.data_dir, f"hub{i}.log"), "wb")  # noqa: SIM115 (closed below)
            logs.append(log)
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, config.data_dir, config.database_url, str(port + i), stderr=log))
        for i, proc in enumerate(procs):
            while True:
                try:
                    conn = await Conn.open(port + i)
                    status, _ = await conn.request("GET", "/healthz")
                    conn.close()
                    if status == 200:
                        break
                except OSError:
                    pass
                if proc.returncode is not None:
                    raise RuntimeError(f"a hub process exited; see {logs[i].name}")
                await asyncio.sleep(0.1)
        yield Hubs([p.pid for p in procs], [port + i for i in range(processes)])
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()
        for log in logs:
            log.close()


@dataclass
class Hubs:
    pids: list[int]
    ports: list[int]

    @contextlib.contextmanager
    def profiled(self):
        """The hubs' profilers on for the block, with HUBSIM_PROFILE set (see serve_forever)."""
        if not os.environ.get("HUBSIM_PROFILE"):
            yield
            return
        import signal

        for pid in self.pids:
            os.kill(pid, signal.SIGUSR1)
        try:
            yield
        finally:
            for pid in self.pids:
                os.kill(pid, signal.SIGUSR2)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the hub processes have used so far."""
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


class Conn:
    """One keep-alive HTTP/1.1 connection; requests on it go one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: Any = None,
                      token: str | None = None, raw: bool = False,
                      text: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None); with `raw`, the body's bytes. `text` sends
        a text/plain body instead of JSON."""
        status, length, chunked = await self._ask(method, path, body, token, text)
        if chunked:
            parts = [chunk async for chunk in self._chunks()]
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length)
        if raw:
            return status, payload
        return status, (json.loads(payload) if payload else None)

    async def stream(self, method: str, path: str, body: Any, token: str) -> AsyncIterator[dict]:
        """The documents of a streamed answer (application/x-ndjson), one a line, as
        they come. Raises RuntimeError for an answer other than 200."""
        status, length, chunked = await self._ask(method, path, body, token, None)
        if status != 200 or not chunked:
            payload = await self.reader.readexactly(length) if not chunked else b""
            raise RuntimeError(f"{path}: {status} {payload[:200]!r}")
        pending = b""
        async for chunk in self._chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)

    async def _ask(self, method: str, path: str, body: Any, token: str | None,
                   text: bytes | None) -> tuple[int, int, bool]:
        """Send a request; read the answer's head: (status, content length, chunked)."""
        data = text if text is not None else b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(data)}"]
        if text is not None:
            head.append("Content-Type: text/plain")
        elif body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        return status, length, chunked

    async def _chunks(self) -> AsyncIterator[bytes]:
        """A chunked body's chunks, until the last (empty) one. Raises ConnectionError
        when the hub closes the connection first."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the hub closed the connection")
            size = int(line, 16)
            if not size:
                break
            yield (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readline()

    def close(self) -> None:
        self.writer.close()


if __name__ == "__main__":
    serve_forever(sys.argv[1], sys.argv[2], int(sys.argv[3]))
