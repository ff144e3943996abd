"""Alerts that people act on: one incident and one message per problem, a resolve, quiet
periods; email through a real SMTP server (aiosmtpd) on loopback, with and without
STARTTLS; signed webhooks to a receiver on loopback that checks the signature and fails on
purpose (retries with backoff, the dead letter, replay); the clock moved, never waited for."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import pytest

from hub.models import Agent, Incident, OutboxMessage
from hub.services import alerts, outbox
from hub.services.alerts import escalations
from tests.hub.harness import HubHarness, enroll
from tests.hub.smtp_inbox import smtp_inbox
from tests.loopback import LoopbackServer, QuietHandler

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Receiver(LoopbackServer):
    """A webhook endpoint on loopback: checks each call's signature, answers 500 to the
    first `fail_first` calls (or to all, with fail_first=-1)."""

    base_path = "/hook"

    def __init__(self, fail_first: int = 0, secret: str | None = "") -> None:
        self.secret = secret  # None: an endpoint that does not sign-check (Slack, Discord)
        self.calls: list[tuple[bool, dict]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = receiver.secret is None or outbox.verify_signature(
                    receiver.secret, self.headers.get("Bulwark-Signature", ""), body)
                receiver.calls.append((ok, json.loads(body)))
                failing = receiver.fail_first < 0 or len(receiver.calls) <= receiver.fail_first
                self.send_response(500 if failing or not ok else 204)
                self.end_headers()

        super().__init__(Handler)


async def channel(t, kind: str, target: str) -> dict:
    r = await t.owner.post(t.base + "/alerts/channels", json={"kind": kind, "name": kind, "target": target})
    assert r.status_code == 201, await r.get_data(as_text=True)
    return await r.get_json()


# ---- incidents ----------------------------------------------------------------------

async def test_one_incident_one_message_then_a_resolve_and_a_quiet_period(tmp_path):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t = await hub.tenant()
        await channel(t, "webhook", "http://127.0.0.1:9/hook")
        tid = t.id
        for s in range(5):  # the same problem, observed every minute
            await alerts.observe(hub.rt, tid, "drift", "agent-1", "web1 drifted", now=at(60 * s))
        incidents = await Incident.filter(tenant_id=tid, kind="drift")
        assert len(incidents) == 1 and incidents[0].observations == 5 and incidents[0].state == "open"
        assert await OutboxMessage.filter(tenant_id=tid).count() == 1

        await alerts.resolve(hub.rt, tid, "drift", "agent-1", now=at(400))
        await alerts.resolve(hub.rt, tid, "drift", "agent-1", now=at(401))  # nothing open: nothing sent
        messages = await OutboxMessage.filter(tenant_id=tid).order_by("created_at")
        assert [m.body["event"] for m in messages] == ["alert.opened", "alert.resolved"]

        # back within the quiet period (600 s by default): the same incident, silently
        await alerts.observe(hub.rt, tid, "drift", "agent-1", "web1 drifted", now=at(500))
        assert await Incident.filter(tenant_id=tid, kind="drift").count() == 1
        assert await OutboxMessage.filter(tenant_id=tid).count() == 2
        await alerts.resolve(hub.rt, tid, "drift", "agent-1", now=at(520))
        # after it: a new incident and a message
        await alerts.observe(hub.rt, tid, "drift", "agent-1", "web1 drifted", now=at(520 + 601))
        assert await Incident.filter(tenant_id=tid, kind="drift").count() == 2
        assert await OutboxMessage.filter(tenant_id=tid).count() == 4  # the silent one's resolve, then this


async def test_a_rule_turned_off_opens_nothing_and_unknown_parameters_are_refused(hub):
    t = await hub.tenant()
    r = await t.owner.put(t.base + "/alerts/rules/drift", json={"enabled": False})
    assert r.status_code == 200 and (await r.get_json())["enabled"] is False
    assert await alerts.observe(hub.rt, t.id, "drift", "a", "x", now=T0) is None
    r = await t.owner.put(t.base + "/alerts/rules/agent_offline", json={"params": {"hours": 1}})
    assert r.status_code == 400 and "hours" in (await r.get_json())["message"]
    r = await t.owner.put(t.base + "/alerts/rules/nonsense", json={})
    assert r.status_code == 404
    rules = {x["kind"]: x for x in (await (await t.owner.get(t.base + "/alerts/rules")).get_json())["rules"]}
    assert rules["agent_offline"]["enabled"] and rules["agent_offline"]["params"] == {"minutes": 5}
    assert rules["drift"]["enabled"] is False


async def test_an_offline_agent_raises_one_alert_and_its_return_resolves_it(hub):
    t = await hub.tenant()
    agent = await enroll(t)
    row = await Agent.get(id=agent.id)
    await Agent.filter(id=agent.id).update(last_seen_at=T0)
    for minute in (1, 4):
        await alerts.sweep_agents(hub.rt, now=at(60 * minute))
    assert not await Incident.filter(kind="agent_offline").exists()
    for minute in (6, 7, 30):
        await alerts.sweep_agents(hub.rt, now=at(60 * minute))
    incident = await Incident.get(kind="agent_offline", subject=str(row.id))
    assert incident.state == "open" and incident.summary.startswith("web1 has not called")
    await Agent.filter(id=agent.id).update(last_seen_at=at(60 * 31))
    await alerts.sweep_agents(hub.rt, now=at(60 * 31))
    assert (await Incident.get(id=incident.id)).state == "resolved"
    r = await t.token.get(t.base + "/alerts/incidents")
    assert sorted((i["kind"], i["state"]) for i in (await r.get_json())["incidents"]) == [
        ("agent_offline", "resolved"), ("security", "resolved")]


async def test_agent_reports_raise_failed_reverted_drift_and_generic_alerts(hub):
    t = await hub.tenant()
    agent = await enroll(t)
    digest = "ab" * 32
    await agent.report(applied_digest=None, failed_digest=digest, errors=["nft: refused"], mode="enforce")
    await agent.report(applied_digest=None, failed_digest="cd" * 32, mode="enforce",
                       errors=["hub not reached within 30 s of applying cdcdcdcdcdcd: reverted"])
    await agent.report(drift=["nft: table changed"], inventory={"hostname": "web1", "xdp_mode": "generic"})
    kinds = sorted(i.kind for i in await Incident.filter(tenant_id=t.id, state="open"))
    assert kinds == ["deployment_failed", "deployment_reverted", "drift", "xdp_generic"]
    await agent.report(inventory={"hostname": "web1", "xdp_mode": "native"})
    kinds = sorted(i.kind for i in await Incident.filter(tenant_id=t.id, state="open"))
    assert kinds == ["deployment_failed", "deployment_reverted"]


async def test_tenants_see_only_their_own_alerts(tmp_path):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        a, b = await hub.tenant("a"), await hub.tenant("b")
        await channel(a, "webhook", "http://127.0.0.1:9/hook")
        await alerts.observe(hub.rt, a.id, "drift", "x", "a's problem", now=T0)
        r = await b.token.get(b.base + "/alerts/incidents?kind=drift")
        assert (await r.get_json())["incidents"] == []
        r = await a.token.get(a.base + "/alerts/incidents?kind=drift")
        assert [i["summary"] for i in (await r.get_json())["incidents"]] == ["a's problem"]
        msg = await OutboxMessage.filter(tenant_id=a.id).first()
        r = await b.owner.post(b.base + f"/alerts/outbox/{msg.id}/replay")
        assert r.status_code == 404
        r = await b.owner.delete(b.base + f"/alerts/channels/{msg.channel_id}")
        assert r.status_code == 404


async def test_a_new_api_token_is_a_security_notice(hub):
    t = await hub.tenant()  # made one token already
    incidents = await Incident.filter(tenant_id=t.id, kind="security")
    assert len(incidents) == 1 and "new API token" in incidents[0].summary
    assert incidents[0].state == "resolved"


# ---- webhooks -----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["http://hub.example.com/x", "https://127.0.0.1/x", "https://10.1.2.3/x",
                                    "https://[::1]/x", "ftp://example.com/x", "https://169.254.169.254/latest"])
async def test_webhooks_must_be_https_to_a_public_address(hub, target):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/alerts/channels", json={"kind": "webhook", "name": "w", "target": target})
    assert r.status_code == 400, await r.get_data(as_text=True)


async def test_webhooks_are_signed_retried_with_backoff_dead_lettered_and_replayed(tmp_path):
    async with HubHarness(tmp_path, webhook_allow_private=True, outbox_max_attempts=4,
                          outbox_backoff_initial_s=30) as hub:
        t = await hub.tenant()
        with Receiver(fail_first=2) as flaky, Receiver(fail_first=-1) as broken:
            made = await channel(t, "webhook", flaky.url)
            flaky.secret = made["secret"]
            assert made["secret"].startswith("bws_")
            listed = (await (await t.owner.get(t.base + "/alerts/channels")).get_json())["channels"]
            assert "secret" not in listed[0]  # shown once
            broken.secret = (await channel(t, "webhook", broken.url))["secret"]
            await OutboxMessage.all().delete()  # the token's notice was queued before the channels
            await alerts.observe(hub.rt, t.id, "drift", "agent-1", "web1 drifted", now=T0)

            await outbox.deliver_due(hub.rt, now=T0)           # attempt 1: both fail
            await outbox.deliver_due(hub.rt, now=at(29))       # not due yet (30 s backoff)
            assert len(flaky.calls) == 1
            await outbox.deliver_due(hub.rt, now=at(30))       # attempt 2: fails again
            await outbox.deliver_due(hub.rt, now=at(89))       # next wait is 60 s
            assert len(flaky.calls) == 2
            assert await outbox.deliver_due(hub.rt, now=at(90)) == 1  # attempt 3: flaky succeeds
            assert all(ok for ok, _ in flaky.calls)
            assert flaky.calls[-1][1]["event"] == "alert.opened"
            assert flaky.calls[-1][1]["incident"]["summary"] == "web1 drifted"
            await outbox.deliver_due(hub.rt, now=at(210))      # broken: attempt 4 of 4 → dead
            dead = await OutboxMessage.get(target=outbox.mask_url(broken.url))  # the URL itself is sealed
            assert dead.state == "dead" and dead.attempts == 4 and "500" in dead.last_error
            r = await t.token.get(t.base + "/alerts/outbox?state=dead")
            assert [m["target"] for m in (await r.get_json())["messages"]] == [outbox.mask_url(broken.url)]

            broken.fail_first = 0
            r = await t.owner.post(t.base + f"/alerts/outbox/{dead.id}/replay")
            assert r.status_code == 200 and (await r.get_json())["state"] == "pending"
            r = await t.owner.post(t.base + f"/alerts/outbox/{dead.id}/replay")
            assert r.status_code == 400  # pending now: nothing to replay
            await outbox.deliver_due(hub.rt, now=dt.datetime.now(dt.timezone.utc))
            assert (await OutboxMessage.get(id=dead.id)).state == "sent"
            assert broken.calls[-1][0] is True


def test_signatures_are_checked_for_key_body_and_freshness():
    body = b'{"event":"alert.opened"}'
    header = outbox.sign("k", body, 1_000_000)
    assert outbox.verify_signature("k", header, body, now=1_000_100)
    assert not outbox.verify_signature("other", header, body, now=1_000_100)
    assert not outbox.verify_signature("k", header, body + b" ", now=1_000_100)
    assert not outbox.verify_signature("k", header, body, now=1_000_000 + 301)  # a replay, later
    assert not outbox.verify_signature("k", "garbage", body, now=1_000_000)


async def test_slack_and_discord_get_their_own_shapes(tmp_path):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t = await hub.tenant()
        with Receiver(secret=None) as slack, Receiver(secret=None) as discord:
            await channel(t, "slack", slack.url)
            await channel(t, "discord", discord.url)
            await OutboxMessage.all().delete()
            await alerts.observe(hub.rt, t.id, "xdp_generic", "a", "web1: running in generic XDP mode", now=T0)
            assert await outbox.deliver_due(hub.rt, now=T0) == 2
        assert "generic XDP" in slack.calls[0][1]["text"] and set(slack.calls[0][1]) == {"text"}
        assert "generic XDP" in discord.calls[0][1]["content"] and set(discord.calls[0][1]) == {"content"}


# ---- email --------------------------------------------------------------------------

def _cert(tmp_path):
    key, cert = tmp_path / "smtp.key", tmp_path / "smtp.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


@pytest.mark.parametrize("starttls", [False, True])
async def test_email_reaches_a_real_smtp_server(tmp_path, starttls):
    import ssl

    kw = {}
    if starttls:
        key, cert = _cert(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kw = {"tls_context": context, "require_starttls": True}
    with smtp_inbox(**kw) as inbox:
        settings = {"smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_starttls": starttls,
                    "mail_from": "alerts@bulwark.example", "smtp_cafile": str(cert) if starttls else ""}
        async with HubHarness(tmp_path, **settings) as hub:
            t = await hub.tenant()
            await channel(t, "email", "ops@example.com")
            await alerts.observe(hub.rt, t.id, "agent_offline", "a1", "web1 has not called the hub for 5 min",
                                 now=T0)
            await alerts.resolve(hub.rt, t.id, "agent_offline", "a1", now=at(60))
            assert await outbox.deliver_due(hub.rt, now=at(61)) == 2
        received = inbox.wait_for(2)
    subjects = [m["Subject"] for m in received]
    assert subjects == ["[Bulwark] Alert: web1 has not called the hub for 5 min",
                        "[Bulwark] Resolved: web1 has not called the hub for 5 min"]
    assert received[0]["To"] == "ops@example.com" and received[0]["From"] == "alerts@bulwark.example"
    assert "agent_offline" in received[0].get_payload()


async def test_email_without_an_smtp_server_waits_in_the_outbox(hub):
    t = await hub.tenant()
    await channel(t, "email", "ops@example.com")
    await alerts.observe(hub.rt, t.id, "drift", "a", "x", now=T0)
    assert await outbox.deliver_due(hub.rt, now=T0) == 0
    m = await OutboxMessage.filter(kind="email", tenant_id=t.id).order_by("-created_at").first()
    assert m.state == "pending" and m.attempts == 1 and "smtp_host" in m.last_error


async def test_an_attack_surge_is_one_incident_until_it_calms_down(hub):
    """Packets matched by the Plan's drop rules, per second over the last minute."""
    t = await hub.tenant()
    agent = await enroll(t)
    r = await t.token.post(t.base + "/policies", json={"name": "p", "source": (
        'policy "p"\ndefault pass\ndrop udp dport 53\npass tcp dport 22\n')})
    policy = await r.get_json()
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    await t.owner.put(t.base + "/alerts/rules/attack_surge", json={"params": {"dropped_pps": 1000}})
    now = int(time.time())

    async def minute(drop_pps: int, pass_pps: int, end: int) -> None:
        points = [{"ts": end - s, "rule": rule, "packets": n, "bytes": n * 60}
                  for s in range(60) for rule, n in (("rule0", drop_pps), ("rule1", pass_pps))]
        r = await agent.post("/agent/v1/metrics", json={"points": points})
        assert r.status_code == 200, await r.get_data(as_text=True)

    def when(ts: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc)

    await minute(500, 50_000, now - 180)  # a busy server, passing: no surge
    await alerts.sweep_surges(hub.rt, now=when(now - 180))
    assert not await Incident.filter(kind="attack_surge").exists()
    await minute(5_000, 100, now - 120)
    await alerts.sweep_surges(hub.rt, now=when(now - 120))
    await minute(800, 100, now - 60)  # under the threshold but not calm: still the same incident
    await alerts.sweep_surges(hub.rt, now=when(now - 60))
    incidents = await Incident.filter(kind="attack_surge")
    assert len(incidents) == 1 and incidents[0].state == "open" and "5,000 packets/s" in incidents[0].summary
    await minute(10, 100, now)
    await alerts.sweep_surges(hub.rt, now=when(now))
    assert (await Incident.get(id=incidents[0].id)).state == "resolved"
    assert await Incident.filter(kind="attack_surge").count() == 1


def test_escalations_group_dropped_sources_by_prefix():
    sources = [(f"2001:db8:1::{i:x}", 10) for i in range(20)] + [(f"2001:db8:2::{i:x}", 1) for i in range(3)]
    sources += [(f"198.51.100.{i}", 5) for i in range(16)] + [("198.51.100.1", 5), ("not an address", 1)]
    found = escalations(sources, prefix_v4=24, prefix_v6=64, min_addresses=16)
    assert found == [("2001:db8:1::/64", 20, 200), ("198.51.100.0/24", 16, 85)]


@pytest.mark.parametrize("auto_add", [0, 1])
async def test_many_dropped_addresses_of_one_64_are_escalated(hub, auto_add):
    from hub.models import IpEntry, IpList

    t = await hub.tenant()
    agent = await enroll(t)
    await t.owner.put(t.base + "/alerts/rules/prefix_escalation",
                      json={"params": {"min_addresses": 8, "auto_add": auto_add, "ttl_s": 600}})
    now = int(time.time())
    r = await agent.post("/agent/v1/metrics", json={"points": [], "top_sources": [
        {"ts": now - 10, "source": f"2001:db8:bad::{i:x}", "packets": 3} for i in range(12)]})
    assert r.status_code == 200, await r.get_data(as_text=True)
    await alerts.sweep_prefixes(hub.rt, now=dt.datetime.fromtimestamp(now, dt.timezone.utc))
    await alerts.sweep_prefixes(hub.rt, now=dt.datetime.fromtimestamp(now + 1, dt.timezone.utc))
    incidents = await Incident.filter(tenant_id=t.id, kind="prefix_escalation")
    assert len(incidents) == 1 and incidents[0].subject == "2001:db8:bad::/64"
    escalated = await IpList.get_or_none(tenant_id=t.id, name=alerts.ESCALATION_LIST)
    if auto_add:
        assert "added to deny list 'escalated' for 600 s" in incidents[0].summary
        entries = await IpEntry.filter(ip_list_id=escalated.id, removed_rev=None)
        # each sweep that still sees the prefix renews its TTL (the second ran at now + 1)
        assert [(e.network, e.expires_at) for e in entries] == [("2001:db8:bad::/64", now + 1 + 600)]
    else:
        assert "suggested: deny 2001:db8:bad::/64" in incidents[0].summary and escalated is None


async def test_a_failed_canary_and_a_rollback_are_alerts(hub):
    t = await hub.tenant()
    canary = await enroll(t, ["web"], "canary")
    await enroll(t, ["web"], "web2")  # not a canary: the rollout stops before it
    make = await t.token.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\n'})
    policy = await make.get_json()
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "labels": ["web"],
                                                          "canary_agent_ids": [canary.id]})
    d = await r.get_json()
    await canary.desired()
    for _ in range(2):  # a second report of the same failure is the same incident
        await canary.report(failed_digest=d["digest"], healthy=False, errors=["verifier rejected"])
    failed = await Incident.filter(tenant_id=t.id, kind="deployment_failed")
    assert len(failed) == 1 and failed[0].subject == d["digest"] and failed[0].observations == 3
    r = await t.token.post(f"{t.base}/deployments/{d['id']}/rollback", json={})
    assert r.status_code == 201
    back = await Incident.filter(tenant_id=t.id, kind="deployment_rolled_back")
    assert len(back) == 1 and "rolled 2 agent(s) back" in back[0].summary


async def test_a_sign_in_from_a_new_place_and_factor_changes_are_security_notices(hub):
    from hub.services import accounts

    t = await hub.tenant()  # its owner signed in once (from the test client's address)
    user = t.user

    async def notices():
        return [i.summary for i in await Incident.filter(tenant_id=t.id, kind="security").order_by("opened_at")
                if "signed in" in i.summary or "2FA" in i.summary]

    await accounts.signed_in(hub.rt, user, "192.0.2.10")
    await accounts.signed_in(hub.rt, user, "192.0.2.200")   # the same /24: nothing new
    assert await notices() == [f"{user.email} signed in from a new place (192.0.2.0/24)"]
    await accounts.signed_in(hub.rt, user, "2001:db8:1:2::5")
    await accounts.signed_in(hub.rt, user, "2001:db8:1:2::99")  # the same /64
    assert (await notices())[-1] == f"{user.email} signed in from a new place (2001:db8:1:2::/64)"
    assert len(await notices()) == 2
    await alerts.account_event(hub.rt, user.id, f"2FA was turned on for {user.email}", "auth.2fa.enable")
    assert (await notices())[-1] == f"2FA was turned on for {user.email}"


async def test_a_jump_against_the_agents_own_baseline_is_a_surge(hub):
    """Far under the absolute threshold, but 20 times what this agent dropped the hour before."""
    t = await hub.tenant()
    agent = await enroll(t)
    source = 'policy "p"\ndefault pass\ndrop udp dport 53\n'
    policy = await (await t.token.post(t.base + "/policies", json={"name": "p", "source": source})).get_json()
    await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
    now = int(time.time())
    calm = [{"ts": now - 120 - 60 * m, "rule": "rule0", "packets": 600, "bytes": 1} for m in range(50)]  # 10/s
    attack = [{"ts": now - s, "rule": "rule0", "packets": 200, "bytes": 1} for s in range(60)]  # 200/s
    for points in (calm, attack):
        assert (await agent.post("/agent/v1/metrics", json={"points": points})).status_code == 200
    await alerts.sweep_surges(hub.rt, now=dt.datetime.fromtimestamp(now, dt.timezone.utc))
    (incident,) = await Incident.filter(tenant_id=t.id, kind="attack_surge")
    assert "200 packets/s" in incident.summary and incident.state == "open"
