"""Replay through the API: a capture in the body, candidate and running policies by id."""
from __future__ import annotations

import ipaddress

from rules_dsl import Packet, build_frame
from tests.rules_dsl import captures as w

RUNNING = 'policy "running"\ndefault pass\n'
CANDIDATE = 'policy "cand"\ndefault pass\ndrop udp dport 25565\n'


def _capture() -> bytes:
    frames = []
    for i, src in enumerate(["203.0.113.5", "203.0.113.5", "198.51.100.7"]):
        p = Packet(l3="ipv4", src=ipaddress.ip_address(src), dst=ipaddress.ip_address("192.0.2.1"), proto=17,
                   sport=40000, dport=25565 if i < 2 else 53, length=64)
        frames.append((i * w.NS, build_frame(p)))
    return w.pcap(frames)


async def _policy(t, name, source):
    r = await t.token.post(t.base + "/policies", json={"name": name, "source": source})
    return (await r.get_json())["id"]


async def test_replay_counts_rules_sources_and_differences(hub):
    t = await hub.tenant()
    cand, run = await _policy(t, "cand", CANDIDATE), await _policy(t, "running", RUNNING)
    r = await t.token.post(f"{t.base}/replay?policy_id={cand}&running_policy_id={run}", data=_capture(),
                           headers={"Content-Type": "application/vnd.tcpdump.pcap"})
    body = await r.get_json()
    assert r.status_code == 200, body
    assert body["frames"] == 3 and body["rules"][0]["drop"] == 2
    assert body["top_dropped_sources"] == [{"src": "203.0.113.5", "drops": 2}]
    assert body["against"]["differing"] == 2 and body["against"]["frames"][0]["running"] == "pass"


async def test_hostile_captures_and_queries_are_4xx(hub):
    t = await hub.tenant()
    cand = await _policy(t, "cand", CANDIDATE)
    bad = await _policy(t, "bad", 'policy "b"\ndefault pass\npass tcp dport 99999\n')
    other = await hub.tenant("other")
    foreign = await _policy(other, "x", CANDIDATE)
    cases = [(f"policy_id={cand}", b"\xd4\xc3\xb2\xa1" + b"\xff" * 40),  # truncated junk: error in the body
             (f"policy_id={bad}", _capture()), (f"policy_id={foreign}", _capture()),
             ("policy_id=nope", _capture()), (f"policy_id={cand}&version=0", _capture()),
             (f"policy_id={cand}&version=99", _capture())]
    for query, data in cases:
        r = await t.token.post(f"{t.base}/replay?{query}", data=data)
        assert r.status_code < 500, (query, r.status_code)
        if query.endswith(str(cand)):
            assert (await r.get_json())["error"] is not None
        else:
            assert 400 <= r.status_code < 500, (query, r.status_code)


async def test_an_oversized_capture_is_413(tmp_path):
    from tests.hub.harness import HubHarness

    async with HubHarness(tmp_path, replay_max_capture_bytes=1000) as hub:
        t = await hub.tenant()
        cand = await _policy(t, "cand", CANDIDATE)
        r = await t.token.post(f"{t.base}/replay?policy_id={cand}", data=b"\0" * 5000)
        assert r.status_code == 413
