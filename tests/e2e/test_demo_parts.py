"""The demo's pure parts, no root needed: its policies pass the lockout guard for the hub
they name, each attack gets the verdict the demo claims from the
DSL's reference evaluator, and the screen shows what was counted."""
from __future__ import annotations

import collections

from demo.display import AgentView, render
from demo.observe import Enforced, RuleCount
from demo.policy import DENY_LIST, REFLECTION_RULE, hardened_policy, web_policy
from demo.topology import Site
from demo.traffic import DENIED_SOURCE, attack_flows
from rules_dsl import Management, evaluate, load, parse_frame

SITE = Site(1, "x-a1", "x-a1", "x-g1", "198.18.1.1", "198.18.1.2", "02:00:00:00:00:01", "02:00:00:00:00:02")
HUB = Management(hub_address="127.0.0.1", hub_port=8080)
LIMIT = "pass tcp dport @web flags syn/syn|ack limit 50/second burst 100 per src ipv6/64"


def plan_of(text: str):
    checked = load(text, "demo.bw", HUB)
    assert checked.ok, [d.render_short() for d in checked.diagnostics]
    return checked.plan


def outcomes(plan, flow, seconds: float = 3) -> set[tuple[str, str]]:
    """(verdict, deciding rule) for `seconds` of the flow at its rate, one rate-limit state."""
    state, seen = None, collections.Counter()
    for i in range(int(seconds * flow.pps)):
        packet = parse_frame(flow.frames[i % len(flow.frames)])
        d, state = evaluate(plan, packet, state, int(i * 1e9 / flow.pps), lists={DENY_LIST: [f"{DENIED_SOURCE}/32"]})
        seen[(d.verdict, plan.xdp.rules[d.rule].text if d.rule is not None else d.reason)] += 1
    return set(seen)


def test_both_versions_keep_the_hub_reachable():
    plan_of(web_policy())
    plan_of(hardened_policy())


def test_each_attack_meets_the_rule_the_demo_names():
    v1, v2 = plan_of(web_policy()), plan_of(hardened_policy())
    flows = {f.name: f for f in attack_flows(SITE)}
    assert outcomes(v2, flows["syn-flood"]) == {("pass", LIMIT), ("drop", LIMIT)}
    assert outcomes(v2, flows["over-limit"], seconds=10) == {("pass", LIMIT), ("drop", LIMIT)}  # after its burst
    assert outcomes(v2, flows["dns-reflection"]) == {("drop", REFLECTION_RULE)}
    assert outcomes(v1, flows["dns-reflection"]) == {("pass", "pass udp sport 53")}
    assert outcomes(v2, flows["ntp-reflection"]) == {("drop", "default")}
    assert outcomes(v2, flows["denied-source"]) == {("drop", "drop from @blocklist")}


def test_the_screen_shows_counts_rates_and_success():
    kernel = Enforced("ab" * 32, "native", (RuleCount(1, "drop from @blocklist", 1200, 1200),
                                            RuleCount(4, LIMIT, 5000, 3000)))
    daemon = {"mode": "enforce", "hub": {"connected": True},
              "rates": {"rule1": {"pps": 100.0, "dps": 100.0}, "rule4": {"pps": 250.0, "dps": 150.0}}}
    screen = render([AgentView("a1", "198.18.1.1", "x-a1", kernel, daemon, (49, 50), (980, 1000)),
                     AgentView("a2", "198.18.2.1", "x-a2", Enforced(), None)],
                    hub_url="http://127.0.0.1:8080", elapsed_s=75, window_s=10, sent_pps=1560)
    lines = screen.splitlines()
    assert "up 01:15" in lines[0] and "1,560 packets/s" in lines[0]
    assert any(line.split()[-4:] == ["0", "1,200", "0", "100"] and "drop from @blocklist" in line for line in lines)
    assert any(line.split()[-4:] == ["2,000", "3,000", "100", "150"] and "limit 50/second" in line for line in lines)
    assert "98.0 % succeeded in the last 10 s (49/50); 980/1,000" in screen
    assert "plan abababababab  xdp native, enforce, hub connected" in screen
    assert "xdp NOT attached, daemon not answering" in screen and "(no packets counted yet)" in screen


def test_the_panel_url_the_demo_prints_serves_the_sign_in_page(tmp_path):
    """`make demo` prints `hub.panel_url`: a real hub (the demo's own HubProcess, run from
    this checkout) answers it with the panel's sign-in form, not the API's JSON 404."""
    import httpx

    from tests.panel import hubproc

    hub = hubproc.start_hub(tmp_path)
    try:
        r = httpx.get(hub.panel_url, timeout=30)
    finally:
        hub.stop()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Sign in" in r.text
    assert 'name="email"' in r.text and 'name="password"' in r.text
