"""`bulwark hub backup` / `restore` with the real restic: the whole drill (backup, wipe,
restore, the same data and a verifying audit chain), an older snapshot after a bad change,
and the 30-day retention."""
from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from demo.processes import free_port
from hub import backup
from hub.cli import main
from hub.config import load_config
from hub.errors import ConfigError
from tests.hub.harness import HubHarness, TokenClient

if shutil.which("restic") is None:
    if os.environ.get("BULWARK_REQUIRE_KERNEL") == "1":
        pytest.fail("BULWARK_REQUIRE_KERNEL=1 but restic is not installed (apt-get install restic)",
                    pytrace=False)
    pytest.skip("restic is not installed (apt-get install restic; CI requires it)", allow_module_level=True)


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("a repository password\n")
    monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv("BULWARK_HUB_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("BULWARK_HUB_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("BULWARK_HUB_BACKUP_REPOSITORY", str(tmp_path / "repo"))
    monkeypatch.setenv("BULWARK_HUB_BACKUP_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.delenv("RESTIC_PASSWORD", raising=False)
    return tmp_path


async def _make_data(tmp_path, **overrides) -> dict:
    async with HubHarness(tmp_path, **overrides) as hub:
        t = await hub.tenant()
        r = await t.token.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\n'})
        assert r.status_code == 201, await r.get_data(as_text=True)
        r = await t.token.post(t.base + "/lists", json={"name": "blocked", "kind": "deny"})
        assert r.status_code == 201
        r = await t.token.post(f"{t.base}/lists/{(await r.get_json())['id']}/entries",
                               json={"add": [{"network": "192.0.2.0/24"}]})
        assert r.status_code == 200
        await hub.rt.audit.append(actor="test", action="test.mark", target="backup")
        return {"base": t.base, "token": t.token.token}


async def _lists_served(tmp_path, data) -> list[str]:
    """Start the hub on the data dir and ask it, as the tenant's API token."""
    async with HubHarness(tmp_path) as hub:
        r = await TokenClient(hub.client(), data["token"]).get(data["base"] + "/lists")
        assert r.status_code == 200, await r.get_data(as_text=True)
        return sorted(item["name"] for item in (await r.get_json())["lists"])


def _rows(tmp_path) -> dict:
    db = sqlite3.connect(tmp_path / "hub" / "hub.sqlite3")
    try:
        return {table: db.execute(f"select * from {table} order by 1").fetchall()
                for table in ("tenant", "policy", "ip_list", "ip_entry", "audit_entry")}
    finally:
        db.close()


def _keys(tmp_path) -> dict:
    return {name: (tmp_path / "hub" / name).read_bytes() for name in backup.KEY_FILES
            if (tmp_path / "hub" / name).exists()}


def test_backup_wipe_restore_then_an_older_snapshot_after_a_bad_change(env, capsys):
    data = asyncio.run(_make_data(env))
    before, keys = _rows(env), _keys(env)
    assert before["ip_list"] and before["audit_entry"] and "secret_key" in keys
    assert main(["backup"]) == 0
    first = backup.snapshots(load_config())[-1]["id"]

    shutil.rmtree(env / "hub")
    assert main(["restore", "latest"]) == 0
    assert _rows(env) == before and _keys(env) == keys
    assert {oct((env / "hub" / name).stat().st_mode & 0o777) for name in [*keys, "hub.sqlite3"]} == {"0o600"}
    assert asyncio.run(_lists_served(env, data)) == ["blocked"]
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out

    db = sqlite3.connect(env / "hub" / "hub.sqlite3")  # the bad change
    db.execute("delete from ip_entry")
    db.execute("delete from ip_list")
    db.commit()
    db.close()
    assert main(["backup"]) == 0
    assert len(backup.snapshots(load_config())) == 2
    capsys.readouterr()
    assert main(["restore", first]) == 0
    aside = capsys.readouterr().out.rsplit(" ", 1)[-1].strip()
    assert _rows(env)["ip_list"] == before["ip_list"] and _rows(env)["ip_entry"] == before["ip_entry"]
    assert asyncio.run(_lists_served(env, data)) == ["blocked"]
    kept = sqlite3.connect(os.path.join(aside, "hub.sqlite3"))  # the replaced database is kept aside
    assert kept.execute("select count(*) from ip_list").fetchone() == (0,)
    kept.close()
    assert main(["audit", "verify"]) == 0


def test_snapshots_older_than_30_days_are_forgotten(env, capsys):
    asyncio.run(_make_data(env))
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S")
    recent = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).strftime("%Y-%m-%d %H:%M:%S")
    assert main(["backup", "--time", old]) == 0
    assert main(["backup", "--time", recent]) == 0
    assert len(backup.snapshots(load_config())) == 2  # the 40-day-old one is within 30 days of the newest
    assert main(["backup"]) == 0
    times = [s["time"][:10] for s in backup.snapshots(load_config())]
    assert len(times) == 2 and times[0] == recent[:10]
    capsys.readouterr()
    assert main(["backup", "--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_restore_refuses_while_a_hub_serves_unless_forced(env, capsys):
    asyncio.run(_make_data(env))
    assert main(["backup"]) == 0
    config = load_config()
    with backup.serving(config):
        assert main(["restore"]) == 2
        assert "serving" in capsys.readouterr().err
        with pytest.raises(ConfigError, match="serving"):
            backup.restore(config)
        assert main(["restore", "--force"]) == 0
    fd = os.open(env / "hub" / backup.LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: a restore can run again
    finally:
        os.close(fd)


def test_a_serving_hub_process_holds_the_lock_restore_checks(env, capsys):
    asyncio.run(_make_data(env))
    assert main(["backup"]) == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))",
                             "serve", "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # until it listens (bounded; no timing asserted)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "the hub did not start"
            time.sleep(0.05)
        capsys.readouterr()
        assert main(["restore"]) == 2
        assert "serving" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert main(["restore"]) == 0  # stopped: the lock is gone with the process


@pytest.mark.parametrize("snapshot", ["--help", "../x", "a" * 65, "LATEST", "latest;rm", ""])
def test_a_snapshot_name_that_is_no_id_is_refused_before_restic(env, snapshot):
    with pytest.raises(ConfigError, match="snapshot"):
        backup.restore(load_config(), snapshot)


def test_settings_are_checked_and_the_password_is_never_on_argv(env, monkeypatch, capsys):
    monkeypatch.delenv("BULWARK_HUB_BACKUP_REPOSITORY")
    assert main(["backup"]) == 2
    assert "backup_repository" in capsys.readouterr().err
    monkeypatch.setenv("BULWARK_HUB_BACKUP_REPOSITORY", str(env / "repo"))
    monkeypatch.setenv("BULWARK_HUB_BACKUP_PASSWORD_FILE", str(env / "absent"))
    assert main(["backup"]) == 2
    assert "backup_password_file" in capsys.readouterr().err
    assert main(["backup", "--time", "yesterday"]) == 2

    seen = []
    real = backup.subprocess.run

    def spy(argv, **kw):
        seen.append(argv)
        return real(argv, **kw)

    monkeypatch.setenv("BULWARK_HUB_BACKUP_PASSWORD_FILE", str(env / "pw"))
    monkeypatch.setattr(backup.subprocess, "run", spy)
    asyncio.run(_make_data(env))
    assert main(["backup"]) == 0
    assert seen and not any("a repository password" in " ".join(argv) for argv in seen)


def test_postgres_drill_pg_dump_then_pg_restore(env, monkeypatch, postgres_server, capsys):
    url = postgres_server.new_database()
    monkeypatch.setenv("BULWARK_HUB_DATABASE_URL", url)
    monkeypatch.setenv("BULWARK_HUB_MIGRATE_ON_START", "yes")
    data = asyncio.run(_make_data(env, database_url=url))
    assert main(["backup"]) == 0

    async def change():
        async with HubHarness(env, database_url=url) as hub:
            r = await TokenClient(hub.client(), data["token"]).post(data["base"] + "/lists",
                                                                    json={"name": "later", "kind": "allow"})
            assert r.status_code == 201

    asyncio.run(change())
    capsys.readouterr()
    assert main(["restore"]) == 0
    aside = capsys.readouterr().out.rsplit(" ", 1)[-1].strip()
    assert os.path.getsize(os.path.join(aside, "hub.pgdump")) > 0  # the replaced database, dumped

    async def served():
        async with HubHarness(env, database_url=url) as hub:
            r = await TokenClient(hub.client(), data["token"]).get(data["base"] + "/lists")
            return sorted(x["name"] for x in (await r.get_json())["lists"])

    assert asyncio.run(served()) == ["blocked"]
    assert main(["audit", "verify"]) == 0


def test_the_database_password_goes_to_pgpassword_not_the_url():
    config = load_config(env={}, database_url="postgres://hub:s%40cret@db.example:5432/hub")
    url, env = backup._pg_args(config)
    assert url == "postgresql://hub@db.example:5432/hub" and env["PGPASSWORD"] == "s@cret"
