"""The panel without a browser: every page under the strict CSP's rules, CSRF on every
form, cookie flags over https, hostile query strings, and the pure summary helpers."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from html.parser import HTMLParser

import pytest

from hub.panel import summary
from tests.hub.harness import PASSWORD, HubHarness


class InlineFinder(HTMLParser):
    """What a strict CSP (script-src 'self'; style-src 'self') would block, and forms."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.forms: list[dict] = []
        self._script_has_src = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            self._in_script, self._script_has_src = True, bool(a.get("src"))
            if not self._script_has_src:
                self.problems.append("<script> without src")
        if tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "inputs": []})
        if tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(a.get("name"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def run(coro):
    return asyncio.run(coro)


async def _seeded(h: HubHarness):
    t = await h.tenant("acme")
    owner = t.owner
    r = await owner.post(t.base + "/lists", json={"name": "bad-bots", "kind": "deny"})
    list_id = (await r.get_json())["id"]
    await owner.post(f"{t.base}/lists/{list_id}/entries", json={"add": [{"network": "198.51.100.7"}]})
    r = await owner.post(t.base + "/policies", json={"name": "web", "source": 'policy "web"\ndefault pass\n'})
    policy_id = (await r.get_json())["id"]
    return t, list_id, policy_id


def test_every_page_has_no_inline_script_or_style_and_every_post_form_has_a_token(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, policy_id = await _seeded(h)
            base = f"/t/{t.id}"
            pages = [f"{base}/", f"{base}/policies", f"{base}/policies/{policy_id}", f"{base}/deployments",
                     f"{base}/lists", f"{base}/lists/{list_id}", f"{base}/alerts", f"{base}/audit", f"{base}/billing", "/privacy"]
            anonymous = h.client()
            for path in ["/login", *pages]:
                client = anonymous if path == "/login" else t.owner.client
                r = await client.get(path)
                assert r.status_code == 200, path
                finder = InlineFinder()
                finder.feed(await r.get_data(as_text=True))
                assert finder.problems == [], (path, finder.problems)
                for form in finder.forms:
                    if form["method"] == "post":
                        assert "csrf_token" in form["inputs"], (path, form)

    run(go())


def test_signed_out_visitors_are_sent_to_sign_in_and_next_is_local(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            c = h.client()
            r = await c.get("/t/00000000-0000-0000-0000-000000000000/audit")
            assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=/t/")
            for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
                body = await (await c.get("/login", query_string={"next": evil})).get_data(as_text=True)
                assert 'name="next" value="/"' in body, evil

    run(go())


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_sign_in_form_refuses_a_missing_or_foreign_token(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            await h.user("a@example.com")
            c = h.client()
            await c.get("/login")
            form = {"email": "a@example.com", "password": PASSWORD}
            assert (await c.post("/login", form=form)).status_code == 403
            assert (await c.post("/login", form={**form, "csrf_token": "x" * 43})).status_code == 403
            other = h.client()
            foreign = _token(await (await other.get("/login")).get_data(as_text=True))
            assert (await c.post("/login", form={**form, "csrf_token": foreign})).status_code == 403
            mine = _token(await (await c.get("/login")).get_data(as_text=True))
            assert (await c.post("/login", form={**form, "csrf_token": mine})).status_code == 302

    run(go())


def test_every_panel_write_refuses_a_missing_token(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, policy_id = await _seeded(h)
            base = f"/t/{t.id}"
            writes = ["/logout", "/tenants", f"{base}/policies", f"{base}/policies/{policy_id}",
                      f"{base}/policies/{policy_id}/deploy", f"{base}/lists", f"{base}/lists/{list_id}/entries",
                      f"{base}/lists/{list_id}/entries/remove", "/privacy/close", "/privacy/sessions/end-others"]
            for path in writes:
                r = await t.owner.client.post(path, form={"name": "x", "source": "x", "network": "10.0.0.1"})
                assert r.status_code == 403, path
                assert "CSRF" in await r.get_data(as_text=True)
            r = await t.owner.client.get(f"{base}/lists/{list_id}")
            assert "198.51.100.7<" in await r.get_data(as_text=True)  # nothing was removed

    run(go())


def test_cookies_over_https_are_secure_host_only_httponly_and_lax(tmp_path):
    async def go():
        async with HubHarness(tmp_path, public_url="https://hub.example.com") as h:
            await h.user("a@example.com")
            c = h.client()
            r = await c.get("/login")
            token = _token(await r.get_data(as_text=True))
            r = await c.post("/login", form={"email": "a@example.com", "password": PASSWORD, "csrf_token": token},
                             scheme="https")
            assert r.status_code == 302
            cookies = r.headers.getlist("Set-Cookie")
            names = {c.split("=", 1)[0] for c in cookies}
            assert {"__Host-bulwark_session", "__Host-bulwark_panel"} <= names, cookies
            for cookie in cookies:
                flags = {f.strip().lower() for f in cookie.split(";")[1:]}
                assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags, cookie
                assert not any(f.startswith("domain=") for f in flags), cookie

    run(go())


@pytest.mark.parametrize("query, status", [
    ({"after": "abc"}, 400), ({"before": "-1"}, 400), ({"after": "9" * 40}, 400), ({"before": "1.5"}, 400),
    ({"after": "999999"}, 200), ({"before": "0"}, 200), ({"last": "1"}, 200), ({"q": "9", "after": "x" * 5000}, 200), ({"q": "1" * 100000}, 200), ({"q": "%' OR 1=1 --"}, 200), ({"q": "\x00"}, 200),
])
def test_hostile_list_queries_get_a_clear_answer(tmp_path, query, status):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, _ = await _seeded(h)
            r = await t.owner.client.get(f"/t/{t.id}/lists/{list_id}", query_string=query)
            assert r.status_code == status
            assert "text/html" in r.headers["Content-Type"]
            body = await r.get_data(as_text=True)
            assert "Traceback" not in body
            if "q" in query and status == 200:
                assert "0 entries" in body

    run(go())


def test_another_tenants_pages_and_objects_are_not_found(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            a, list_id, policy_id = await _seeded(h)
            b = await h.tenant("other")
            for path in [f"/t/{a.id}/", f"/t/{a.id}/lists/{list_id}", f"/t/{b.id}/lists/{list_id}",
                         f"/t/{b.id}/policies/{policy_id}"]:
                r = await b.owner.client.get(path)
                assert r.status_code == 404, path
            r = await b.owner.client.post(f"/t/{b.id}/lists/{list_id}/entries/remove",
                                          form={"network": "198.51.100.7/32", "csrf_token": b.owner.csrf})
            assert r.status_code == 404

    run(go())


def test_policy_save_keeps_the_errors_with_their_line_and_column(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, policy_id = await _seeded(h)
            path = f"/t/{t.id}/policies/{policy_id}"
            r = await t.owner.client.post(path, form={"source": 'policy "web"\ndefault pass\ndrop tcp dport 70000\n',
                                                      "csrf_token": t.owner.csrf})
            assert r.status_code == 302
            body = await (await t.owner.client.get(path)).get_data(as_text=True)
            assert 'data-line="3"' in body and "error</strong> at line 3:" in body
            assert "Fix the errors above to deploy." in body

    run(go())


# --- summary (pure) ---------------------------------------------------------------------

PLAN = json.dumps({"xdp": {"default": "drop", "malformed": "drop",
                           "rules": [{"action": "pass", "text": "pass tcp dport 443"},
                                     {"action": "limit", "text": "pass udp limit 5/second"}]}})


def test_verdicts_come_from_the_plan():
    v = summary.verdicts(PLAN)
    assert v["rule0"]["action"] == "pass" and v["rule1"]["action"] == "limit"
    assert v["default"]["action"] == "drop" and v["malformed"]["action"] == "drop"
    assert summary.verdicts(None) == {}


def test_totals_and_series_split_passed_from_dropped():
    points = [{"agent_id": "a", "rule": "rule0", "ts": 10, "packets": 5, "bytes": 500},
              {"agent_id": "a", "rule": "default", "ts": 10, "packets": 3, "bytes": 180},
              {"agent_id": "a", "rule": "rule1", "ts": 12, "packets": 4, "bytes": 40}]
    t = summary.totals(points, summary.verdicts(PLAN))
    assert t.packets == {"pass": 5, "drop": 3, "limit": 4}
    assert t.by_rule["default"] == [3, 180]
    assert summary.series(points, summary.verdicts(PLAN)) == [[10, 5.0, 3.0], [12, 2.0, 0.0]]


def test_online_drift_and_human():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert summary.online(now - dt.timedelta(seconds=119), 120, now)
    assert not summary.online(now - dt.timedelta(seconds=121), 120, now)
    assert not summary.online(None, 120, now)
    assert summary.drift_state(None, None) == "none"
    assert summary.drift_state("a" * 64, "a" * 64) == "in sync"
    assert summary.drift_state("a" * 64, None) == "pending"
    assert [summary.human(n) for n in (0, 999, 1500, 2_500_000, 3e9)] == ["0", "999", "1.5k", "2.5M", "3.0G"]


def test_a_bug_in_a_page_is_an_html_500_without_a_trace(tmp_path, monkeypatch, caplog):
    from hub.panel import dashboard

    async def broken(*_a, **_k):
        raise RuntimeError("secret internals")

    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            monkeypatch.setattr(dashboard, "_desired", broken)
            r = await t.owner.client.get(f"/t/{t.id}/")
            body = await r.get_data(as_text=True)
            assert r.status_code == 500 and "text/html" in r.headers["Content-Type"]
            assert "secret internals" not in body and "Something went wrong" in body

    run(go())
    assert "secret internals" in caplog.text  # but the operator's log has it



@pytest.mark.parametrize("network", ["not-an-address", "10.0.0.0/33", "x" * 10000, "", "1.2.3.4\x00"])
def test_a_bad_entry_goes_back_to_the_list_with_the_reason(tmp_path, network):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, _ = await _seeded(h)
            path = f"/t/{t.id}/lists/{list_id}"
            r = await t.owner.client.post(path + "/entries", form={"network": network, "csrf_token": t.owner.csrf})
            assert r.status_code == 302 and r.headers["Location"] == path
            body = await (await t.owner.client.get(path)).get_data(as_text=True)
            assert 'class="error" role="alert"' in body and "1 entry" in body

    run(go())


def test_a_duplicate_policy_name_goes_back_with_the_reason(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            path = f"/t/{t.id}/policies"
            r = await t.owner.client.post(path, form={"name": "web", "source": "x", "csrf_token": t.owner.csrf})
            assert r.status_code == 302 and r.headers["Location"] == path
            body = await (await t.owner.client.get(path)).get_data(as_text=True)
            assert 'role="alert"' in body

    run(go())


def test_the_new_policy_form_starts_from_a_source_that_checks_clean(tmp_path):
    import html

    import rules_dsl

    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            body = await (await t.owner.client.get(f"/t/{t.id}/policies")).get_data(as_text=True)
            source = html.unescape(re.search(r'<textarea id="policy-source"[^>]*>(.*?)</textarea>', body, re.S).group(1))
            checked = rules_dsl.load(source, filename="new.bw")
            assert checked.plan is not None and not checked.diagnostics

    run(go())


def test_every_tenant_page_and_action_is_404_for_another_tenants_member(tmp_path):
    """The route table, not a hand-kept list: a new /t/<tenant_id>/... route is covered too."""
    async def go():
        async with HubHarness(tmp_path) as h:
            a, _, _ = await _seeded(h)
            b, list_b, policy_b = await _seeded(h)
            r = await b.owner.post(f"{b.base}/join-tokens", json={"ttl_s": 600})
            join = (await r.get_json())["token"]
            r = await h.client().post("/agent/v1/enroll", json={"join_token": join, "inventory": {"hostname": "b1"}})
            agent_b = (await r.get_json())["agent_id"]
            from hub.models import OutboxMessage

            dead_b = await OutboxMessage.create(tenant_id=b.id, kind="email", target="b@example.com", state="dead",
                                                next_attempt_at=dt.datetime.now(dt.timezone.utc),
                                                created_at=dt.datetime.now(dt.timezone.utc))
            await b.owner.post(f"{b.base}/invitations", json={"email": "x@example.com", "role": "viewer"})
            member_b = (await (await b.owner.get(f"{b.base}/members")).get_json())["members"][0]["id"]
            invitation_b = (await (await b.owner.get(f"{b.base}/invitations")).get_json())["invitations"][0]["id"]
            token_b = (await (await b.owner.get(f"{b.base}/tokens")).get_json())["tokens"][0]["id"]
            join_b = (await (await b.owner.get(f"{b.base}/join-tokens")).get_json())["join_tokens"][0]["id"]
            ids = {"tenant_id": str(b.id), "list_id": list_b, "policy_id": policy_b, "agent_id": agent_b,
                   "deployment_id": "00000000-0000-0000-0000-000000000000", "message_id": str(dead_b.id),
                   "member_id": str(member_b), "invitation_id": invitation_b, "token_id": token_b,
                   "join_token_id": join_b}
            rules = [r for r in h.app.url_map.iter_rules() if r.rule.startswith("/t/")]
            assert len(rules) >= 15
            for rule in rules:
                path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: ids[m.group(1)], rule.rule)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    form = {"csrf_token": a.owner.csrf, "name": "x", "source": "x", "network": "10.9.9.9",
                            "enabled": "0", "kind": "deny"}
                    r = await a.owner.client.open(path, method=method, form=form if method == "POST" else None)
                    assert r.status_code == 404, (method, path, r.status_code)

    run(go())


def test_live_check_runs_the_checker_without_saving_and_wants_the_token(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, policy_id = await _seeded(h)
            url = f"/t/{t.id}/policies/{policy_id}/check"
            bad = {"source": 'policy "web"\ndefault pass\ndrop tcp dport 70000\n'}
            assert (await t.owner.client.post(url, json=bad)).status_code == 403  # no X-CSRF-Token
            r = await t.owner.post(url, json=bad)
            assert r.status_code == 200
            (d,) = (await r.get_json())["diagnostics"]
            assert d["severity"] == "error" and d["line"] == 3
            for hostile in ([1], {"source": 5}, {"source": None}, "x"):
                assert (await t.owner.post(url, json=hostile)).status_code == 400
            r = await t.owner.post(url, data=b"\xff\xfe", headers={"Content-Type": "application/json"})
            assert r.status_code == 400
            r = await t.owner.post(url, json={"source": "#" * (2 * h.config.max_body_bytes)})
            assert r.status_code == 413
            r = await t.owner.get(f"{t.base}/policies/{policy_id}/versions")
            assert len((await r.get_json())["versions"]) == 1  # nothing was saved

    run(go())


def test_the_alerts_page_shows_the_history_and_replays_a_dead_letter(tmp_path):
    from hub.models import OutboxMessage
    from hub.services import alerts

    async def go():
        async with HubHarness(tmp_path, webhook_allow_private=True) as h:
            t, _, _ = await _seeded(h)
            r = await t.owner.post(t.base + "/alerts/channels",
                                   json={"kind": "webhook", "name": "ops", "target": "http://127.0.0.1:9/hook"})
            assert r.status_code == 201
            await alerts.observe(h.rt, t.id, "drift", "a1", "edge-1: protections changed outside Bulwark")
            await OutboxMessage.filter(tenant_id=t.id).update(state="dead", attempts=8, last_error="refused")
            page = await (await t.owner.client.get(f"/t/{t.id}/alerts")).get_data(as_text=True)
            assert "edge-1: protections changed outside Bulwark" in page and "refused" in page
            dead = await OutboxMessage.filter(tenant_id=t.id, body__not={}).first()
            path = f"/t/{t.id}/alerts/outbox/{dead.id}/replay"
            assert (await t.owner.client.post(path, form={})).status_code == 403  # no CSRF token
            r = await t.owner.client.post(path, form={"csrf_token": _token(page)})
            assert r.status_code == 302
            assert (await OutboxMessage.get(id=dead.id)).state == "pending"

    run(go())


def test_live_check_answers_the_review_and_refuses_hostile_fields(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, policy_id = await _seeded(h)
            url = f"/t/{t.id}/policies/{policy_id}/check"
            source = ('policy "web"\ndefault pass\ndrop tcp dport 22\nset s { list "absent" }\ndrop from @s\n'
                      "expect drop tcp 192.0.2.1:1 -> 192.0.2.2:22\nexpect drop tcp 192.0.2.1:1 -> 192.0.2.2:80\n")
            r = await t.owner.post(url, json={"source": source, "deployed_version": 1})
            body = await r.get_json()
            assert [(d["severity"], d["line"]) for d in body["diagnostics"]] == [("warning", 4)]
            assert [o["passed"] for o in body["expects"]] == [True, False]
            assert "22" in body["explain"]
            assert {"kind": "add", "line": "+drop tcp dport 22"} in body["diff"]  # against saved version 1
            for hostile in (True, "1", 1.5, 2**40, -1, [1]):
                r = await t.owner.post(url, json={"source": source, "deployed_version": hostile})
                assert r.status_code in (200, 400), hostile
            r = await t.owner.post(url, json={"source": source, "deployed_version": True})
            assert r.status_code == 400

    run(go())


def test_panel_import_shows_each_bad_line_and_export_neutralises_formulas(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, _ = await _seeded(h)
            base = f"/t/{t.id}/lists/{list_id}"
            form = {"csrf_token": t.owner.csrf, "format": "text", "text": "10.0.0.1\nbad\n10.0.0.2\n300.1.1.1\n"}
            r = await t.owner.client.post(base + "/import", form=form)
            html = await r.get_data(as_text=True)
            assert r.status_code == 400 and "Nothing was imported" in html
            assert "<strong>line 2</strong>" in html and "<strong>line 4</strong>" in html
            form = {**form, "format": "xml"}
            assert (await t.owner.client.post(base + "/import", form=form)).status_code == 400
            form = {"csrf_token": t.owner.csrf, "network": "10.0.0.9", "ttl": "99y", "comment": "x"}
            r = await t.owner.client.post(base + "/entries", form=form)
            assert r.status_code == 302  # back to the list with the reason
            form = {**form, "ttl": "1h", "comment": "@SUM(1)"}
            assert (await t.owner.client.post(base + "/entries", form=form)).status_code == 302
            r = await t.owner.client.get(base + "/export.csv")
            text = await r.get_data(as_text=True)
            assert r.status_code == 200 and "10.0.0.9," in text and ",'@SUM(1)" in text
            r = await t.owner.client.get(base + "?q=10.0.0.9")
            assert re.search(r"in (59|60) min", await r.get_data(as_text=True))

    run(go())


def test_an_agent_is_renamed_and_only_deleted_once_revoked(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            from tests.hub.harness import enroll

            t.token = await t.make_token(["write"])
            agent = await enroll(t, hostname="edge-9")
            base = f"/t/{t.id}/agents/{agent.id}"
            r = await t.owner.client.post(base + "/rename", form={"csrf_token": t.owner.csrf, "name": "  "})
            assert r.status_code == 302
            r = await t.owner.client.post(base + "/rename", form={"csrf_token": t.owner.csrf, "name": "web-a"})
            assert r.status_code == 302
            page = await (await t.owner.client.get(base)).get_data(as_text=True)
            assert "web-a" in page and "Delete agent" not in page
            r = await t.owner.client.post(base + "/delete", form={"csrf_token": t.owner.csrf})
            assert r.status_code == 302 and (await t.owner.client.get(base)).status_code == 200  # refused: live
            await t.owner.post(f"{t.base}/agents/{agent.id}/revoke")
            assert "Delete agent web-a" in await (await t.owner.client.get(base)).get_data(as_text=True)
            r = await t.owner.client.post(base + "/delete", form={"csrf_token": t.owner.csrf})
            assert r.status_code == 302 and (await t.owner.client.get(base)).status_code == 404

    run(go())


def test_the_dashboard_shows_the_xdp_mode_of_the_latest_status_and_sums_points_per_minute(tmp_path):
    """An agent enrolled in native mode that later falls back to generic says so with its
    next status; the dashboard's totals are the sums of what the agent posted."""
    from hub.services import metrics
    from tests.hub.harness import enroll

    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            agent = await enroll(t, hostname="edge-9")
            await agent.report(healthy=True, mode="none", xdp_mode="generic")
            r = await agent.post("/agent/v1/status", json={"healthy": True, "xdp_mode": "turbo"})
            assert r.status_code == 400  # not a mode: a clear 4xx, never stored
            now = (int(__import__("time").time()) // 60) * 60
            points = [{"ts": now - 120 + s, "rule": "default", "packets": 10, "bytes": 600} for s in (0, 10, 70)]
            r = await agent.post("/agent/v1/metrics", json={"points": points, "top_sources": [
                {"ts": now - 60, "source": "198.51.100.66", "packets": 4321}]})
            assert r.status_code == 200, await r.get_data(as_text=True)
            rows = await metrics.bucketed(t.id, now - 900, now + 1, 60)
            assert sorted((p["ts"], p["packets"], p["bytes"]) for p in rows) == [(now - 120, 20, 1200),
                                                                                 (now - 60, 10, 600)]
            page = await (await t.owner.client.get(f"/t/{t.id}/")).get_data(as_text=True)
            row = page[page.index("edge-9"):]
            row = row[:row.index("</tr>")]
            assert "generic" in row and "native" not in row
            assert "30 pkts" in row  # passed in the window (default verdict: pass)
            top = page[page.index("Top dropped sources"):]
            assert "198.51.100.66" in top and "4.3k" in top

    run(go())


def test_privacy_page_closes_an_account_only_with_the_password_and_the_box(tmp_path):
    from hub.models import ErasureRequest, User

    async def go():
        async with HubHarness(tmp_path) as h:
            t, _, _ = await _seeded(h)
            c = t.owner.client
            r = await c.get("/privacy")
            html = await r.get_data(as_text=True)
            assert r.status_code == 200
            for text in ("What we keep about you", "Download my data", "Where you are signed in",
                         "Two-factor authentication", "Close your account", "30 days", "10 years"):
                assert text in html, text
            assert f"/api/v1/tenants/{t.id}/export" in html
            token = _token(html)
            for form in ({"password": PASSWORD}, {"password": "not the password!", "confirm": "yes"},
                         {"password": "x" * 5000, "confirm": "yes"}, {"confirm": "yes"}):
                r = await c.post("/privacy/close", form={**form, "csrf_token": token})
                assert r.status_code == 302 and r.headers["Location"].endswith("/privacy"), form
                assert not await ErasureRequest.exists()
            r = await c.get("/privacy")
            assert "not right" in await r.get_data(as_text=True)
            r = await c.post("/privacy/close", form={"password": PASSWORD, "code": await h.code(t.user.email),
                                                     "confirm": "yes", "csrf_token": token})  # 2FA on: the code too
            assert r.status_code == 302 and "/login" in r.headers["Location"]
            assert await ErasureRequest.exists(kind="user", subject_id=t.user.id)
            assert (await User.get(id=t.user.id)).closed_at is not None
            r = await c.get("/privacy")
            assert r.status_code == 302  # signed out

    run(go())


def test_list_and_policy_rename_and_delete_forms_refuse_bad_names_and_go_back_with_the_reason(tmp_path):
    """The one rename/delete helper behind agents, lists and policies: a bad, empty,
    oversized or duplicate name goes back to the object's page with the reason; a good
    one renames; delete goes to the index."""
    import html

    async def go():
        async with HubHarness(tmp_path) as h:
            t, list_id, policy_id = await _seeded(h)
            await t.owner.post(t.base + "/lists", json={"name": "other", "kind": "deny"})
            cases = [(f"/t/{t.id}/lists/{list_id}", "", "a list needs a name"),
                     (f"/t/{t.id}/lists/{list_id}", "other", "a list with this name exists"),
                     (f"/t/{t.id}/policies/{policy_id}", "bad name!", "a policy name is letters"),
                     (f"/t/{t.id}/policies/{policy_id}", "\x00", "a policy name is letters"),
                     (f"/t/{t.id}/policies/{policy_id}", "x" * 100_000, "Renamed to " + "x" * 200 + ".")]  # cut
            for page, name, shown in cases:
                r = await t.owner.client.post(page + "/rename", form={"csrf_token": t.owner.csrf, "name": name})
                assert r.status_code == 302 and r.headers["Location"] == page, (name[:20], r.status_code)
                body = html.unescape(await (await t.owner.client.get(page)).get_data(as_text=True))
                assert shown in body, name[:20]
                assert ('role="alert"' in body) is not shown.startswith("Renamed"), name[:20]
            r = await t.owner.client.post(f"/t/{t.id}/policies/{policy_id}/rename",
                                          form={"csrf_token": t.owner.csrf, "name": "edge.v2"})
            assert r.status_code == 302
            assert "Renamed to edge.v2." in await (await t.owner.client.get(r.headers["Location"])).get_data(as_text=True)
            for page, index in ((f"/t/{t.id}/policies/{policy_id}", f"/t/{t.id}/policies"),
                                (f"/t/{t.id}/lists/{list_id}", f"/t/{t.id}/lists")):
                r = await t.owner.client.post(page + "/delete", form={"csrf_token": t.owner.csrf})
                assert r.status_code == 302 and r.headers["Location"] == index
                assert (await t.owner.client.get(page)).status_code == 404

    run(go())
