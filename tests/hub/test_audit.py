"""The audit log cannot be quietly rewritten (issue 12, item 10): a keyed chain, signed
checkpoints that catch truncation, checked on a schedule, written with their actions."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading

import pytest

from hub.cli import main
from hub.errors import Conflict
from hub.models import Agent, AuditEntry, Deployment, PolicyVersion
from hub.services import audit, background
from tests.hub.harness import enroll

SSH = 'policy "ssh"\ndefault pass\npass tcp dport 22\n'


async def _entries(hub, n: int) -> None:
    for i in range(n):
        await hub.rt.audit.append(actor="test", action=f"x{i}", target=f"t{i}")


def _unkeyed(prev: str, e: AuditEntry) -> str:
    """What an attacker without the key computes: the old sha256 chain."""
    body = json.dumps({"seq": e.seq, "tenant": str(e.tenant_id) if e.tenant_id else None, "actor": e.actor,
                       "action": e.action, "target": e.target, "address": e.address,
                       "at_us": int(e.at.timestamp() * 1_000_000), "details": e.details},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


async def test_an_edit_with_every_later_hash_recomputed_is_found(hub):
    await _entries(hub, 5)
    rows = await AuditEntry.all().order_by("seq")
    rows[1].target = "mallory"
    prev = rows[0].hash
    for e in rows[1:]:
        e.prev_hash, e.hash = prev, _unkeyed(prev, e)
        await e.save()
        prev = e.hash
    checked, problems = await hub.rt.audit.verify()
    assert checked == 5 and [p.seq for p in problems] == [2, 3, 4, 5]
    assert all("edited" in p.what for p in problems)


async def test_deleting_the_newest_entries_is_caught_against_the_last_checkpoint(hub):
    await _entries(hub, 4)
    cp = await hub.rt.audit.checkpoint()
    assert cp is not None and cp["seq"] == 4
    await AuditEntry.filter(seq__gte=3).delete()
    checked, problems = await hub.rt.audit.verify()
    assert checked == 2
    assert [str(p) for p in problems] == [
        "entry 4: missing: the log ends at 2, before the signed checkpoint (entries were deleted)"]


async def test_checkpoints_check_offline_with_the_public_key_alone(hub):
    await _entries(hub, 2)
    cp = await hub.rt.audit.checkpoint()
    public = hub.rt.audit.keys.public_hex
    assert audit.check_checkpoint(cp, public) is None
    assert audit.check_checkpoint({**cp, "seq": 1}, public) == "its signature does not match"
    assert audit.check_checkpoint(cp, "00" * 32) == "signed by another key"
    assert audit.check_checkpoint({"kind": 1}, public) is not None
    assert audit.check_checkpoint("junk", public) is not None
    checked, problems = await hub.rt.audit.verify({**cp, "hash": "0" * 64})
    assert problems and "not valid" in problems[0].what


def test_key_files_are_private_and_created_once(tmp_path):
    keys: list[audit.AuditKeys] = []
    threads = [threading.Thread(target=lambda: keys.append(audit.AuditKeys.load(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k.chain for k in keys}) == 1 and len({k.public_hex for k in keys}) == 1
    for name in ("audit_key", "audit_signing_key"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


async def test_an_entry_commits_with_its_action_or_not_at_all(hub, monkeypatch):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/policies", json={"name": "ssh", "source": SSH})
    policy_id = (await r.get_json())["id"]
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    list_path = f"{t.base}/lists/{(await r.get_json())['id']}"
    before = await PolicyVersion.filter(policy_id=policy_id).count()
    agent = await enroll(t, labels=["web"])

    async def broken(*a, **kw):
        raise Conflict("the audit write failed")

    monkeypatch.setattr(hub.rt.audit, "_append", broken)
    r = await t.token.put(f"{t.base}/policies/{policy_id}", json={"source": SSH + "pass tcp dport 80\n"})
    assert r.status_code == 409
    assert await PolicyVersion.filter(policy_id=policy_id).count() == before
    r = await t.token.post(list_path + "/import", data=b"192.0.2.1\n")
    assert r.status_code == 409
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy_id, "labels": ["web"]})
    assert r.status_code == 409
    assert not await Deployment.filter(tenant_id=t.id).exists()
    assert (await Agent.get(id=agent.id)).deployment_id is None
    r = await t.owner.post(t.base + "/tokens", json={"name": "x", "scopes": ["read"]})
    assert r.status_code == 409
    monkeypatch.undo()
    body = await (await t.token.get(list_path)).get_json()
    assert (body["revision"], body["entries"]) == (0, 0)


async def test_tenants_verify_their_own_entries(hub):
    t = await hub.tenant()
    other = await hub.tenant("other")
    await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    r = await t.token.get(t.base + "/audit/verify")
    assert r.status_code == 200, await r.get_data(as_text=True)
    body = await r.get_json()
    mine = await AuditEntry.filter(tenant_id=t.id).count()
    assert body["ok"] and body["checked"] == mine and body["problems"] == []
    await hub.rt.audit.checkpoint()
    body = await (await other.token.get(other.base + "/audit/verify")).get_json()
    assert body["checkpoint"]["public_key"] == hub.rt.audit.keys.public_hex
    row = await AuditEntry.filter(tenant_id=t.id).order_by("seq").first()
    row.target = "edited"
    await row.save()
    body = await (await t.token.get(t.base + "/audit/verify")).get_json()
    assert not body["ok"] and body["problems"][0]["seq"] == row.seq
    body = await (await other.token.get(other.base + "/audit/verify")).get_json()
    assert body["ok"]  # another tenant's edited entry is not this tenant's problem
    doc = await (await hub.client().get("/api/v1/openapi.json")).get_json()
    assert "/api/v1/tenants/{tenant_id}/audit/verify" in doc["paths"]


async def test_the_chain_is_verified_and_checkpointed_on_a_schedule(hub):
    assert any(name == "audit-verify" for name, _, _ in background.JOBS)
    fn = next(fn for name, _, fn in background.JOBS if name == "audit-verify")
    await _entries(hub, 3)
    await fn(hub.rt)
    assert hub.rt.audit.last_checkpoint()["seq"] == 3


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BULWARK_HUB_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("BULWARK_HUB_ARGON2_TIME_COST", "1")
    return tmp_path


def test_cli_exports_a_checkpoint_and_verifies_against_it(env, monkeypatch, capsys):
    import io
    import sqlite3

    for i in range(3):
        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
        assert main(["create-admin", f"a{i}@example.com", "--password-stdin"]) == 0
    out = env / "cp.json"
    assert main(["audit", "checkpoint", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["seq"] == 3
    assert main(["audit", "verify", "--checkpoint", str(out)]) == 0
    db = sqlite3.connect(env / "hub.sqlite3")
    db.execute("delete from audit_entry where seq = 3")
    db.commit()
    capsys.readouterr()
    assert main(["audit", "verify", "--checkpoint", str(out)]) == 1
    assert "before the signed checkpoint" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 1  # the kept checkpoint catches it too
    assert main(["audit", "verify", "--checkpoint", str(env / "absent.json")]) == 2
