"""Closing an account or a tenant, and the erasure job (hub.services.erasure) on a moved clock.

What a user would notice: after closing, they cannot sign in and their tenant is gone; after
the job, nothing of theirs is left in the database but the minimised billing record and the
audit entries, whose actor, target and address are pseudonyms; the audit chain still
verifies; the report says what was kept and why and names no one; the job can crash in the
middle and run again."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from hub.models import (
    Agent,
    AuditEntry,
    BillingAccount,
    BillingRecord,
    ErasureRequest,
    LoginFailure,
    MetricPoint,
    PolicyVersion,
    Session,
    Tenant,
    TopSource,
    User,
)
from hub.services import audit, erasure, retention
from tests.hub.harness import PASSWORD, HubHarness, enroll

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def _everything_of(email: str) -> list[str]:
    """Every audit row and policy version that still names `email` anywhere."""
    found = []
    for e in await AuditEntry.all():
        if email in json.dumps([e.actor, e.target, e.address, e.details]):
            found.append(f"audit {e.seq} {e.action}")
    for v in await PolicyVersion.all():
        if email in v.created_by:
            found.append(f"policy version {v.id}")
    return found


async def _world(hub):
    """`a` owns tenant `t` alone and is a member of `b`'s tenant `u`."""
    t = await hub.tenant("alone")
    u = await hub.tenant("shared")
    r = await u.owner.post(u.base + "/invitations", json={"email": t.user.email, "role": "operator"})
    assert r.status_code == 201, await r.get_data(as_text=True)
    token = (await r.get_json())["token"]
    r = await t.owner.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code in (200, 201), await r.get_data(as_text=True)
    r = await t.owner.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\n'})
    assert r.status_code == 201, await r.get_data(as_text=True)
    agent = await enroll(t)
    await MetricPoint.create(tenant_id=t.id, agent_id=agent.id, rule="r", ts=int(_now().timestamp()), packets=1)
    await TopSource.create(tenant_id=t.id, agent_id=agent.id, ts=int(_now().timestamp()), source="198.51.100.7")
    await BillingAccount.create(tenant_id=t.id, customer_id="cus_123", subscription_id="sub_123", state="active",
                                quantity=1)
    bad = hub.client()
    await bad.post("/auth/login", json={"email": t.user.email, "password": "wrong password here"})
    return t, u


@BOTH
async def test_closing_an_account_then_the_job_erases_it_and_keeps_what_the_law_needs(tmp_path, backend):
    async with HubHarness(tmp_path) as hub:
        t, u = await _world(hub)
        email, user_id = t.user.email, t.user.id
        assert await LoginFailure.filter(key__contains=email).exists()

        r = await t.owner.post("/auth/me/close")
        assert r.status_code == 202, await r.get_data(as_text=True)
        body = await r.get_json()
        assert body["tenants_closed"] == [str(t.id)]  # alone there; `u` has another owner
        # At once: signed out, no sign-in, the tenant gone for everyone, its credentials revoked.
        assert (await t.owner.get("/auth/me")).status_code == 401
        r = await hub.client().post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 401
        assert (await t.token.get(t.base)).status_code == 401
        assert not await Agent.filter(tenant_id=t.id, revoked_at__isnull=True).exists()
        assert (await u.owner.get(u.base + "/members")).status_code == 200

        # Not due before its time (erasure_delay_s 0: due at once, so move nothing back).
        reports = await erasure.run_due(hub.rt, now=_now() + DAY)
        assert {r["kind"] for r in reports} == {"user", "tenant"}
        assert not await User.exists(id=user_id)
        assert not await Tenant.exists(id=t.id)
        assert not await MetricPoint.filter(tenant_id=t.id).exists()
        assert not await TopSource.filter(tenant_id=t.id).exists()
        assert not await LoginFailure.filter(key__contains=email).exists()
        assert not await Session.filter(user_id=user_id).exists()
        assert await _everything_of(email) == []
        # Kept: the billing record, minimised, for 10 years; the audit entries, pseudonymised.
        record = await BillingRecord.get(tenant_id=t.id)
        assert record.customer_id == "cus_123"
        assert dt.timedelta(days=3650) < record.keep_until - record.closed_at < dt.timedelta(days=3660)
        checked, problems = await hub.rt.audit.verify()
        assert problems == [] and checked > 10
        pseudonyms = {e.actor for e in await AuditEntry.all() if e.actor.startswith(audit.PSEUDONYM)}
        assert len(pseudonyms) >= 1

        tenant_report = next(r for r in reports if r["kind"] == "tenant")
        assert [k["what"].split(" ")[0] for k in tenant_report["kept"]] == ["billing", "audit"]
        assert all(k["why"] for k in tenant_report["kept"])
        for request in await ErasureRequest.all():
            path = erasure.report_path(hub.rt, request.id)
            text = path.read_text()
            assert json.loads(text) == request.report
            assert email not in text and "cus_123" not in text
            assert path.stat().st_mode & 0o777 == 0o600

        # Idempotent: again, nothing changes and nothing is due.
        before = [(e.seq, e.actor, e.hash) for e in await AuditEntry.all().order_by("seq")]
        assert await erasure.run_due(hub.rt, now=_now() + 2 * DAY) == []
        request = await ErasureRequest.get(kind="user", subject_id=user_id)
        steps = request.steps_done
        await erasure.run_request(hub.rt, request, _now() + 2 * DAY)
        assert request.steps_done == steps
        after = [(e.seq, e.actor, e.hash) for e in await AuditEntry.all().order_by("seq")]
        assert after[:len(before)] == before  # only the new privacy.erased entry was added
        assert (await hub.rt.audit.verify())[1] == []

        # Ten years and a day later, retention removes the billing record too.
        gone = await retention.enforce(hub.rt, now=record.keep_until + DAY)
        assert gone["billing_records"] == 1


async def test_a_crash_in_the_middle_resumes_where_it_stopped(tmp_path, monkeypatch):
    async with HubHarness(tmp_path) as hub:
        t, _ = await _world(hub)
        email = t.user.email
        r = await t.owner.post("/auth/me/close")
        assert r.status_code == 202
        steps = erasure.STEPS["user"]

        async def crash(*_args):
            raise RuntimeError("power cut")

        broken = [(n, a, crash if n == "outbox" else f) for n, a, f in steps]
        monkeypatch.setitem(erasure.STEPS, "user", broken)
        with pytest.raises(RuntimeError):
            await erasure.run_due(hub.rt, now=_now() + DAY)
        request = await ErasureRequest.get(kind="user")
        assert [n for n, _ in request.steps_done] == ["audit", "authored", "invitations", "login_failures"]
        assert await User.exists(email=email) and request.state == "scheduled"

        monkeypatch.setitem(erasure.STEPS, "user", steps)
        await erasure.run_due(hub.rt, now=_now() + DAY)
        request = await ErasureRequest.get(kind="user")
        assert request.state == "done"
        assert [n for n, _ in request.steps_done] == [n for n, _, _ in steps]  # each step once
        assert not await User.exists(email=email)
        assert await _everything_of(email) == []
        assert (await hub.rt.audit.verify())[1] == []


async def test_closing_needs_a_fresh_proof_and_no_orphaned_tenant(tmp_path):
    async with HubHarness(tmp_path) as hub:
        t, u = await _world(hub)
        # The last owner of a tenant someone else uses: 409, naming it.
        r = await u.owner.post("/auth/me/close")
        assert r.status_code == 409
        assert str(u.id) in json.dumps(await r.get_json())
        # An API token never closes anything.
        assert (await t.token.post("/auth/me/close")).status_code == 401
        assert (await t.token.post(t.base + "/close")).status_code == 401
        # A stale proof: 403 until /auth/reauth.
        await Session.filter(user_id=t.user.id).update(created_at=_now() - dt.timedelta(hours=1))
        assert (await t.owner.post("/auth/me/close")).status_code == 403
        assert (await t.owner.post(t.base + "/close")).status_code == 403
        r = await t.owner.post("/auth/reauth", json={"password": PASSWORD, "code": await hub.code(t.user.email)})
        assert r.status_code == 200
        t.owner.csrf = (await r.get_json())["csrf_token"]
        assert (await t.owner.post(t.base + "/close")).status_code == 202
        assert (await t.owner.get(t.base)).status_code == 404  # gone for its members
        assert (await t.owner.post(t.base + "/close")).status_code == 404
        # An operator of `u` cannot close it.
        r = await t.owner.post(u.base + "/close")
        assert r.status_code == 403
        assert not await Tenant.filter(id=u.id, closed_at__isnull=False).exists()


async def test_an_edited_pseudonym_or_actor_is_still_caught(tmp_path):
    async with HubHarness(tmp_path) as hub:
        t, _ = await _world(hub)
        rt = hub.rt
        await rt.audit.pseudonymise(AuditEntry.filter(actor=f"user:{t.user.email}"))
        assert (await rt.audit.verify())[1] == []
        entry = await AuditEntry.filter(actor__startswith=audit.PSEUDONYM).first()
        await AuditEntry.filter(id=entry.id).update(actor="erased:0000000000000000")
        problems = (await rt.audit.verify())[1]
        assert [p.seq for p in problems] == [entry.seq] and "actor" in problems[0].what
        other = await AuditEntry.filter(actor="hub").first() or await AuditEntry.filter(
            actor__startswith="user:").first()
        await AuditEntry.filter(id=other.id).update(actor="user:someone-else@example.com")
        assert {p.seq for p in (await rt.audit.verify())[1]} == {entry.seq, other.seq}


async def test_a_chain_of_format_1_is_rewritten_once_and_a_signed_record_says_so(tmp_path):
    async with HubHarness(tmp_path) as hub:
        t, _ = await _world(hub)
        rt = hub.rt
        # Make the log what hubs before 0012 wrote: format 1, hashed over the values.
        prev, key = audit.GENESIS, rt.audit.keys.chain
        for e in await AuditEntry.all().order_by("seq"):
            e.fmt, e.prev_hash = 1, prev
            e.actor_hash = e.target_hash = e.address_hash = ""
            e.hash = audit._row_hash(key, e)
            await e.save()
            prev = e.hash
        old = await rt.audit.checkpoint()
        assert old is not None and (await rt.audit.verify())[1] == []

        n = await rt.audit.pseudonymise(AuditEntry.filter(actor=f"user:{t.user.email}"))
        assert n > 0
        assert not await AuditEntry.filter(fmt=1).exists()
        assert (await rt.audit.verify())[1] == []
        lines = [json.loads(x) for x in rt.audit.checkpoints_path.read_text().splitlines()]
        (rechain,) = [x for x in lines if x["kind"] == audit.RECHAIN_KIND]
        assert rechain["seq"] == old["seq"] and rechain["old_hash"] == old["hash"]
        assert lines[-1]["kind"] == audit.CHECKPOINT_KIND and lines[-1]["seq"] >= old["seq"]
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        signed = {k: v for k, v in rechain.items() if k != "signature"}
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(rt.audit.keys.public_hex)).verify(
            bytes.fromhex(rechain["signature"]), json.dumps(signed, sort_keys=True, separators=(",", ":")).encode())
        assert await rt.audit.upgrade() == 0  # once


async def test_a_chain_that_does_not_verify_is_not_rewritten(tmp_path):
    async with HubHarness(tmp_path) as hub:
        await _world(hub)
        rt = hub.rt
        await AuditEntry.all().update(fmt=1)  # hashes no longer match their format: an "edit"
        with pytest.raises(Exception, match="does not verify"):
            await rt.audit.upgrade()
