"""Pure parts: hub documents to desired states, rates, the local endpoint, atomic state."""
from __future__ import annotations

import functools
import json
import os
import stat

import hypothesis
import pytest
import trio
from hypothesis import strategies as st

from agent import http, sampler
from agent.config import AgentConfig
from agent.entries import Entries, from_wire, to_wire
from agent.errors import HubRejected, StateError
from agent.hub_link import DesiredTracker, Reports, document_lines, metrics_body, save_credential, status_body
from agent.messages import MetricsBatch, Report
from agent.state import Desired, ListState, StateStore
from agent.telemetry import Telemetry
from bpf.guard import RuleCounters
from rules_dsl import load
from tests.agent.conftest import POLICY_B

PLAN_B = load(POLICY_B, "b.bw").plan


def doc(lists, *, plan=True, mode="enforce", etag="e1"):
    d = {"agent_id": "x", "etag": etag, "mode": mode,
         "deployment": {"id": "d1", "digest": PLAN_B.digest}, "lists": lists}
    if plan:
        d["plan"] = json.loads(PLAN_B.to_json())
    return d


def packed(*texts):
    return to_wire(Entries(texts))


def test_tracker_snapshot_then_delta_then_current():
    t = DesiredTracker(None)
    d1 = t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 1, "mode": "snapshot",
                        "entries": packed("203.0.113.0/24", "192.0.2.9/32")}]))
    assert d1.digest == PLAN_B.digest and d1.deltas == ()
    assert d1.list_entries() == {"ban": frozenset({"203.0.113.0/24", "192.0.2.9"})}
    assert t.known_revisions() == {"L": 1}
    d2 = t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 2, "mode": "delta", "since": 1,
                        "added": packed("198.51.100.7"), "removed": packed("192.0.2.9")}], plan=False))
    assert d2.plan == PLAN_B and d2.deltas == (("ban", ("198.51.100.7",), ("192.0.2.9",)),)
    assert d2.list_entries()["ban"] == {"203.0.113.0/24", "198.51.100.7"}
    d3 = t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 2, "mode": "current"}],
                      plan=False, mode="deactivate"))
    assert d3.mode == "deactivate" and not d3.active and d3.list_entries() == d2.list_entries()
    assert t.update(doc([], plan=False, mode="none")) is None  # no deployment: keep what we have
    with pytest.raises(HubRejected, match="entries"):
        t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 3, "mode": "snapshot",
                       "entries": ["192.0.2.9/32"]}]))


def test_a_delta_past_the_bound_is_not_spelled_out(monkeypatch):
    """A delta bigger than the maps edit in place (agent.state.DELTA_MAX) gives the whole
    list and no per-entry deltas: the maps flip, and turning a million packed entries into
    texts on the event loop took seconds."""
    import agent.hub_link as hub_link

    monkeypatch.setattr(hub_link, "DELTA_MAX", 2)
    t = DesiredTracker(None)
    t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 1, "mode": "snapshot",
                   "entries": packed("192.0.2.9")}]))
    big = t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 2, "mode": "delta", "since": 1,
                         "added": packed("198.51.100.7", "198.51.100.8"), "removed": packed("192.0.2.9")}],
                       plan=False))
    assert big.deltas == ()
    assert big.list_entries()["ban"] == {"198.51.100.7", "198.51.100.8"}
    small = t.update(doc([{"id": "L", "name": "ban", "kind": "deny", "revision": 3, "mode": "delta", "since": 2,
                           "added": packed("198.51.100.9"), "removed": packed()}], plan=False))
    assert small.deltas == (("ban", ("198.51.100.9",), ()),)


def test_failure_reports_wait_for_the_hub_in_order():
    q = Reports(max_failures=2)
    ok_a = Report(applied_digest="a", mode="enforce")
    reverted = Report(applied_digest="a", mode="enforce", failed_digest="b", errors=("reverted",))
    q.add(ok_a)
    q.add(reverted)
    q.add(Report(applied_digest="c", mode="enforce"))
    latest = Report(applied_digest="c", mode="enforce", drift=("nft",))
    q.add(latest)  # the hub was away: older plain reports are replaced, the failure is not
    assert q.waiting == [reverted, latest]
    q.sent(q.next())
    assert q.next() is latest
    q.add(Report(applied_digest="d", mode="enforce"))  # arrived while `latest` was being posted
    q.sent(latest)
    assert [r.applied_digest for r in q.waiting] == ["d"]
    for n in range(4):
        q.add(Report(applied_digest="a", mode="enforce", failed_digest=str(n)))
    assert [r.failed_digest for r in q.waiting] == ["1", "2", "3"]  # at most 2 old failures kept


def test_rates_and_counter_reset():
    prev = {0: RuleCounters(100, 10_000, 100)}
    now = {0: RuleCounters(300, 30_000, 250), 1024: RuleCounters(10, 1000, 0)}
    r = sampler.rates(prev, now, 2.0)
    assert r["rule0"]["pps"] == 100 and r["rule0"]["dps"] == 75 and r["rule0"]["bps"] == 80_000
    assert r["default"]["packets"] == 10
    r = sampler.rates(now, {0: RuleCounters(5, 500, 0)}, 1.0)  # a new generation counts from zero
    assert r["rule0"]["packets"] == 5


def test_endpoint_serves_metrics_and_status():
    tele = Telemetry()
    tele.m_packets.labels("rule0").set(42)
    tele.top_sources = [("203.0.113.9", 7)]
    out = http.respond(tele, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.0 200") and b'bulwark_rule_packets_per_second{rule="rule0"} 42.0' in out
    out = http.respond(tele, b"GET /status HTTP/1.0\r\n\r\n")
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert body["top_sources"] == [{"source": "203.0.113.9", "packets": 7}]
    assert http.respond(tele, b"POST /status HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 405")
    assert http.respond(tele, b"GET /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 404")


async def test_endpoint_over_tcp():
    cfg = AgentConfig(http_port=0)
    tele = Telemetry()
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = cfg.replace(http_port=port)
    tx, rx = trio.open_memory_channel(0)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: http.run(cfg, inbox=rx, outbox=tx, telemetry=tele,
                                                         task_status=task_status))
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"GET /status HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
        assert b'"mode": "none"' in data
        nursery.cancel_scope.cancel()


def test_bodies_fit_the_hub_protocol():
    body = status_body(Report(applied_digest="a" * 64, mode="enforce", list_revisions=(("L", 3),)))
    assert body == {"applied_digest": "a" * 64, "failed_digest": None, "healthy": True, "mode": "enforce",
                    "list_revisions": {"L": 3}, "errors": [], "drift": [], "xdp_mode": "none"}
    body = status_body(Report(applied_digest=None, mode="enforce", xdp_mode="generic"))
    assert body["xdp_mode"] == "generic"  # reported with every status, not only at enrolment
    body = metrics_body([MetricsBatch(100, 1.0, (("rule0", 5, 500),), (("203.0.113.9", 3),))])
    assert body["points"] == [{"ts": 100, "rule": "rule0", "packets": 5, "bytes": 500, "interval_s": 1}]
    assert body["top_sources"] == [{"ts": 100, "source": "203.0.113.9", "packets": 3}]


def test_state_round_trip_previous_and_torn_files(tmp_path):
    store = StateStore(tmp_path)
    assert store.load() is None
    a = Desired(mode="enforce", plan=PLAN_B, source="hub")
    store.save(a)
    store.save(Desired(mode="deactivate", plan=PLAN_B, source="hub"))
    assert store.load().mode == "deactivate" and store.load("previous") == a
    assert store.load() is store.load()  # one copy for the actors that read it
    assert StateStore(tmp_path).load() == store.load()
    (tmp_path / "applied.json").write_text('{"mode": "enf')  # changed behind the store's back
    with pytest.raises(StateError):
        store.load()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_lists_persist_packed_as_the_hub_sent_them_and_old_files_still_load(tmp_path):
    store = StateStore(tmp_path)
    entries = {"192.0.2.9", "203.0.113.0/24", "2001:db8::/32"}
    d = Desired(mode="enforce", plan=PLAN_B, source="revert", reverted_from=("abc", "d1"),
                lists=(ListState("ban", 3, entries, "L1"), ListState("empty", 1, (), "L2")))
    store.save(d)
    saved = json.loads((tmp_path / "applied.json").read_text())
    assert [from_wire(x["packed"]) for x in saved["lists"]] == [Entries(entries), Entries()]
    back = store.load()
    assert back == d and back.reverted_from == ("abc", "d1")
    assert back.list_entries()["ban"] == entries and len(back.list_entries()["empty"]) == 0
    del saved["lists"][0]["packed"]
    saved["lists"][0]["entries"] = "192.0.2.9/32\n2001:db8::/32\n203.0.113.0/24"  # written before: text
    (tmp_path / "applied.json").write_text(json.dumps(saved))
    assert store.load() == d
    saved["lists"][0]["entries"] = sorted(entries, reverse=True)  # and before that: a JSON list
    (tmp_path / "applied.json").write_text(json.dumps(saved))
    assert store.load() == d
    saved["lists"][0]["entries"] = 7
    (tmp_path / "applied.json").write_text(json.dumps(saved))
    with pytest.raises(StateError):
        store.load()


def test_credential_is_private(tmp_path):
    cfg = AgentConfig(state_root=str(tmp_path))
    path = save_credential(cfg, "https://hub", "id", "secret")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_tracker_hands_the_hub_signature_to_the_reconciler():
    t = DesiredTracker(None)
    assert t.update({**doc([]), "signature": "c2ln"}).signature == "c2ln"
    assert t.update(doc([], plan=False, etag="e2")).signature is None  # unsigned: agent.trust refuses it


def test_drop_aggregates_are_bounded_and_what_the_hub_accepts():
    """The sampler's rows (rules_dsl.traffic) in the agent's metrics body validate against the
    hub's schema: one contract, both sides."""
    from hub.blueprints.agent_protocol import MetricsIn
    from rules_dsl import traffic

    samples = [(17, port, 40 + port % 1500) for port in range(3000)] + [(1, 0, 84)] * 5 + [(6, 22, 60)]
    rows = traffic.aggregate(samples)
    assert len(rows) <= traffic.MAX_ROWS and sum(1 for r in rows if r[0] == "dport" and r[1] == 17) == traffic.MAX_PORTS
    assert ("proto", 1, 0, 5) in rows and ("dport", 6, 22, 1) in rows and not any(r[1] == 1 for r in rows if r[0] == "dport")
    assert sum(n for k, _, _, n in rows if k == "size") == len(samples)
    assert traffic.size_bucket(63) == 0 and traffic.size_bucket(64) == 64 and traffic.size_bucket(9000) == 1400
    body = metrics_body([MetricsBatch(int(__import__("time").time()), 1.0, (), (), tuple(rows))])
    assert len(MetricsIn.model_validate(body).traffic) == len(rows)


# ---- streamed desired state: lines of one answer ----

async def _lines(chunks, **kw):
    async def gen():
        for c in chunks:
            yield c
    return [line async for line in document_lines(gen(), **kw)]


@hypothesis.given(st.lists(st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b), max_size=8),
                  st.data())
def test_document_lines_are_the_same_however_the_answer_is_cut(docs, data):
    whole = b"".join(d + b"\n" + b"\n" * data.draw(st.integers(0, 2)) for d in docs)  # blank lines between
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=6)))
    chunks = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)])]
    expected = [d for d in docs if d.strip()]
    assert trio.run(_lines, [c for c in chunks if c]) == expected


def test_a_document_line_past_the_bound_is_refused_and_a_cut_off_line_dropped():
    assert trio.run(_lines, [b'{"a":1}\n{"b"']) == [b'{"a":1}']  # the answer ended mid-line
    with pytest.raises(HubRejected, match="more than 16 bytes"):
        trio.run(functools.partial(_lines, [b"x" * 10, b"y" * 10], max_bytes=16))  # no newline in sight
    assert trio.run(functools.partial(_lines, [b"x" * 16 + b"\n"] * 3, max_bytes=16)) == [b"x" * 16] * 3
