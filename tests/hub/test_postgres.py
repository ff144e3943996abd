"""Several hub processes on one PostgreSQL database: LISTEN/NOTIFY carries changes between
them, and survives the loss of the LISTEN connection."""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from hub.services import notify_pg
from tests.hub import postgres
from tests.hub.harness import AgentClient, enroll, unpacked

on_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def test_payloads_carry_every_channel_once_under_the_size_limit():
    assert notify_pg.payloads(["tenant:1", "agent:2", "tenant:1"]) == ["tenant:1 agent:2"]
    assert notify_pg.payloads([]) == []
    many = [f"agent:{i:036d}" for i in range(1000)]
    out = notify_pg.payloads(many)
    assert len(out) > 1
    assert all(len(p.encode()) <= notify_pg.MAX_PAYLOAD_BYTES for p in out)
    assert [c for p in out for c in p.split()] == many
    with pytest.raises(ValueError):
        notify_pg.payloads(["two words"])


def test_listen_params_come_from_the_database_url_without_pool_options():
    params = notify_pg.listen_params("postgres://hub:s%40cret@db.internal:6432/bulwark?maxsize=20")
    assert params == {"host": "db.internal", "port": 6432, "user": "hub", "password": "s@cret",
                      "database": "bulwark", "server_settings": {"application_name": notify_pg.APPLICATION_NAME}}
    assert notify_pg.is_postgres_url("postgres://x/y") and not notify_pg.is_postgres_url("sqlite://x")


async def _until(condition) -> None:
    async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
        while not await condition():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def hub_process(tmp_path: Path, database_url: str, *args: str,
                      started: list[subprocess.Popen] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """`bulwark hub serve [ARGS]` in its own process on `database_url`; yields a client for
    it (and appends the process to `started`, for a test that signals it)."""
    port = postgres.free_port()
    # The harness's data dir: processes of one hub share its key files (audit chain, signing).
    env = {**os.environ, "BULWARK_HUB_DATABASE_URL": database_url, "BULWARK_HUB_DATA_DIR": str(tmp_path / "hub"),
           "BULWARK_HUB_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "hub-b.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bulwark.cli", "hub", "serve", "--bind", f"127.0.0.1:{port}",
                                 *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if started is not None:
        started.append(proc)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            async def ready() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await _until(ready)
            yield client
    finally:
        proc.terminate()
        proc.wait(30)


async def _waiting_on(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    return int(float(next(line.split()[1] for line in text.splitlines()
                          if line.startswith("bulwark_hub_pending_pushes "))))


async def _poll_while(client: httpx.AsyncClient, agent: AgentClient, change) -> httpx.Response:
    """The agent's long-poll on `client`'s hub, with `change` made once it waits there."""
    body = {"etag": agent.etag, "applied_digest": None, "lists": agent.lists, "wait_s": 30}
    poll = asyncio.create_task(client.post("/agent/v1/desired", json=body,
                                           headers={"Authorization": f"Bearer {agent.token}"}))

    async def waiting() -> bool:
        return poll.done() or await _waiting_on(client) > 0

    await _until(waiting)
    await change(agent)
    return await poll


async def _kill_listeners(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()", notify_pg.APPLICATION_NAME)
    finally:
        await conn.close()


async def _new_list(t, name: str = "scanners") -> str:
    r = await t.token.post(t.base + "/lists", json={"name": name, "kind": "deny"})
    assert r.status_code == 201
    return f"{t.base}/lists/{(await r.get_json())['id']}"


@on_postgres
async def test_a_change_through_one_hub_process_wakes_an_agent_waiting_on_another(hub, tmp_path):
    async with hub_process(tmp_path, hub.config.database_url) as b:
        t = await hub.tenant()
        agent = await enroll(t)
        assert (await agent.desired())["lists"] == []

        async def create_list(_agent):
            await _new_list(t)

        r = await _poll_while(b, agent, create_list)
        assert r.status_code == 200, "the agent waiting on hub B was not woken by the change on hub A"
        assert [x["name"] for x in r.json()["lists"]] == ["scanners"]


@on_postgres
async def test_the_notifier_recovers_when_its_listen_connection_is_killed(hub, tmp_path):
    async with hub_process(tmp_path, hub.config.database_url) as b:
        t = await hub.tenant()
        base = await _new_list(t)
        agent = await enroll(t)
        await agent.desired()
        async with hub.rt.notifier.subscribe(["nobody-publishes-here"]) as sub:
            assert await _kill_listeners(hub.config.database_url) == 2  # hub A's and hub B's
            # Nothing was published: only the reconnection wakes it, so that a waiter
            # re-reads whatever changed while nobody listened.
            assert await sub.wait(30)

        async def add_entry(_agent):
            r = await t.token.post(base + "/entries", json={"add": [{"network": "192.0.2.1/32"}]})
            assert r.status_code == 200

        r = await _poll_while(b, agent, add_entry)
        assert r.status_code == 200, "hub B stopped hearing hub A after its LISTEN connection was killed"
        assert unpacked(r.json()["lists"][0]["added"]) == ["192.0.2.1"]


def test_bulwark_hub_migrate_builds_the_schema_on_postgres(postgres_server, monkeypatch, tmp_path):
    from hub import cli

    url = postgres_server.new_database(migrated=False)
    try:
        monkeypatch.setenv("BULWARK_HUB_DATABASE_URL", url)
        monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path))
        assert cli.main(["migrate"]) == 0
        assert cli.main(["migrate"]) == 0  # idempotent

        async def tables() -> set[str]:
            conn = await asyncpg.connect(url)
            try:
                return {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            finally:
                await conn.close()

        assert {"tenant", "agent", "ip_entry", "audit_entry", "metric_point"} <= asyncio.run(tables())
    finally:
        postgres_server.drop_created()


@on_postgres
async def test_a_burst_of_publishes_goes_out_as_one_notification(hub):
    conn = await asyncpg.connect(hub.config.database_url)
    heard: list[str] = []
    try:
        await conn.add_listener(notify_pg.PG_CHANNEL, lambda *args: heard.append(args[-1]))
        async with hub.rt.notifier.subscribe(["agent:last"]) as sub:
            for i in range(100):
                await hub.rt.notifier.publish(f"agent:{i}", "tenant:t")
            await hub.rt.notifier.publish("agent:last")
            assert await sub.wait(30)

        async def heard_last() -> bool:
            return any("agent:last" in p for p in heard)

        await _until(heard_last)
    finally:
        await conn.close()
    assert len(heard) == 1  # 101 publishes made in one go, one NOTIFY
    assert sorted(heard[0].split()) == sorted([*(f"agent:{i}" for i in range(100)), "tenant:t", "agent:last"])


def test_an_unreachable_database_is_a_clear_error_not_a_traceback(monkeypatch, tmp_path, capsys):
    from hub import cli

    monkeypatch.setenv("BULWARK_HUB_DATABASE_URL", f"postgres://bulwark@127.0.0.1:{postgres.free_port()}/bulwark")
    monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path))
    assert cli.main(["migrate"]) == 2
    assert "bulwark hub: cannot reach the database" in capsys.readouterr().err


@on_postgres
async def test_a_background_job_runs_in_one_process_at_a_time(hub):
    from hub.services import background

    running, ran = asyncio.Event(), []

    async def job(rt) -> None:
        ran.append(1)
        running.set()
        await asyncio.sleep(0.5)

    first = asyncio.create_task(background.run_once(hub.rt, "test-job", job))
    await running.wait()
    # Another process (another connection) finds the lock taken and skips this period.
    assert await background.run_once(hub.rt, "test-job", job) is False
    assert await first is True and len(ran) == 1
    assert await background.run_once(hub.rt, "test-job", job) is True  # free again
    # The hub's own jobs run inside the lock's transaction.
    for module in background.JOB_MODULES:
        importlib.import_module(module)
    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "l", "kind": "deny"})
    await t.token.post(f"{t.base}/lists/{(await r.get_json())['id']}/entries",
                       json={"add": [{"network": "192.0.2.1/32", "expires_at": 1}]})
    for name, _, fn in background.JOBS:
        assert await background.run_once(hub.rt, name, fn) is True, name
    r = await t.token.get(f"{t.base}/lists/{(await r.get_json())['id']}")
    assert (await r.get_json())["revision"] == 2  # the expired entry was swept


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@on_postgres
async def test_serve_with_workers_runs_that_many_processes_on_one_port(hub, tmp_path):
    started: list[subprocess.Popen] = []
    async with hub_process(tmp_path, hub.config.database_url, "--workers", "2", started=started) as b:
        workers = _children(started[0].pid)
        assert len(workers) == 2
        seen = set()
        for _ in range(40):  # new connections, spread by the kernel (SO_REUSEPORT)
            async with httpx.AsyncClient(base_url=str(b.base_url)) as fresh:
                seen.add((await fresh.get("/healthz")).status_code)
        assert seen == {200}
        started[0].send_signal(signal.SIGTERM)  # forwarded to both workers
        assert started[0].wait(30) == 0
        assert not any(Path(f"/proc/{w}").exists() for w in workers)


def test_serve_with_workers_on_sqlite_is_refused(tmp_path, monkeypatch, capsys):
    from hub.cli import main

    monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path))
    assert main(["serve", "--workers", "2"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


async def _report_at_once(hubs: list, agents: list[AgentClient], **body) -> None:
    """Every agent posts its status at the same moment, spread over the hub processes
    (`hubs`: None for the in-process hub A, else an httpx client of another process)."""
    async def one(i: int, agent: AgentClient) -> None:
        via = hubs[i % len(hubs)]
        if via is None:
            await agent.report(**body)
        else:
            r = await via.post("/agent/v1/status", json=body, headers={"Authorization": f"Bearer {agent.token}"})
            assert r.status_code == 200, r.text

    await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))


async def _audited(action: str, deployment_id: str) -> int:
    from hub.models import AuditEntry

    return await AuditEntry.filter(action=action, target=deployment_id).count()


@on_postgres
async def test_canaries_reporting_at_once_through_two_hubs_make_one_transition(hub, tmp_path):
    """Eight canaries report "applied" together through two hub processes: the rollout
    is released once (one audit entry), and completes once when the rest report."""

    ssh = (Path(__file__).parents[2] / "examples" / "ssh.bw").read_text()
    async with hub_process(tmp_path, hub.config.database_url) as b:
        t = await hub.tenant()
        canaries = [await enroll(t, ["web"], f"canary{i}") for i in range(8)]
        rest = [await enroll(t, ["web"], f"web{i}") for i in range(4)]
        r = await t.token.post(t.base + "/policies", json={"name": "ssh", "source": ssh})
        policy = await r.get_json()
        r = await t.token.post(t.base + "/deployments", json={
            "policy_id": policy["id"], "labels": ["web"], "canary_agent_ids": [c.id for c in canaries]})
        d = await r.get_json()
        assert d["state"] == "canary"
        await _report_at_once([None, b], canaries, applied_digest=d["digest"], healthy=True)
        state = (await (await t.token.get(f"{t.base}/deployments/{d['id']}")).get_json())
        assert state["state"] == "released"
        assert await _audited("deploy.released", d["id"]) == 1
        assert {x["status"] for x in state["targets"] if not x["canary"]} == {"released"}
        await _report_at_once([b, None], rest, applied_digest=d["digest"], healthy=True)
        state = (await (await t.token.get(f"{t.base}/deployments/{d['id']}")).get_json())
        assert state["state"] == "complete"
        assert await _audited("deploy.complete", d["id"]) == 1
        assert await _audited("deploy.create", d["id"]) == 1
        checked, problems = await hub.rt.audit.verify()
        assert problems == [] and checked >= 3  # the chain stayed whole across both processes


@on_postgres
async def test_canaries_failing_at_once_through_two_hubs_fail_the_rollout_once(hub, tmp_path):
    ssh = (Path(__file__).parents[2] / "examples" / "ssh.bw").read_text()
    async with hub_process(tmp_path, hub.config.database_url) as b:
        t = await hub.tenant()
        canaries = [await enroll(t, ["web"], f"canary{i}") for i in range(6)]
        rest = await enroll(t, ["web"], "web")
        r = await t.token.post(t.base + "/policies", json={"name": "ssh", "source": ssh})
        policy = await r.get_json()
        r = await t.token.post(t.base + "/deployments", json={
            "policy_id": policy["id"], "labels": ["web"], "canary_agent_ids": [c.id for c in canaries]})
        d = await r.get_json()
        await _report_at_once([None, b], canaries, failed_digest=d["digest"], healthy=False, errors=["no"])
        state = (await (await t.token.get(f"{t.base}/deployments/{d['id']}")).get_json())
        assert state["state"] == "failed"
        assert await _audited("deploy.failed", d["id"]) == 1
        assert await _audited("deploy.released", d["id"]) == 0
        statuses = {x["status"] for x in state["targets"] if x["canary"]}
        assert statuses <= {"failed", "rolled_back"} and "failed" in statuses
        assert (await rest.desired())["mode"] == "none"  # never released
        for c in canaries:
            assert (await c.desired())["mode"] == "none"  # back on their previous (no) deployment
