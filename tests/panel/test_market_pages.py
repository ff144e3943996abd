"""The marketplace and library pages without a browser: strict-CSP markup, CSRF on every
form, the flow by plain form posts (no JavaScript), hostile queries, other tenants."""
from __future__ import annotations

import asyncio

import pytest

from hub.services import marketplace
from hub.services.scope import Principal
from tests.hub.harness import HubHarness, enroll
from tests.panel.test_pages import InlineFinder
from tests.templates.test_templates import SMALL

pytestmark = pytest.mark.kernel  # publishing runs the guard
CLI = Principal(actor="cli", is_platform_admin=True)
V4 = SMALL.replace("version = 3", "version = 4").replace("pass tcp from @admins dport 22",
                                                          "pass tcp from @admins dport { 22, 2222 }")


def run(coro):
    return asyncio.run(coro)


async def _text(r) -> str:
    return await r.get_data(as_text=True)


def _clean(html: str, path: str) -> None:
    finder = InlineFinder()
    finder.feed(html)
    assert finder.problems == [], (path, finder.problems)
    for form in finder.forms:
        if form["method"] == "post":
            assert "csrf_token" in form["inputs"], (path, form)


def test_install_by_form_then_upgrade_and_deploy_without_javascript(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            await marketplace.publish(h.rt, CLI, SMALL)
            t = await h.tenant("acme")
            agent = await enroll(t, ["game"])
            c, base = t.owner.client, f"/t/{t.id}"
            r = await c.get(f"{base}/marketplace")
            assert r.status_code == 200 and "Small" in await _text(r)
            _clean(await _text(r), "marketplace")
            r = await c.get(f"{base}/marketplace/small", query_string={"preview": "1", "p.rate": "5"})
            body = await _text(r)
            assert r.status_code == 200 and 'aria-invalid="true"' in body and "must be from 10 to 1000" in body
            r = await c.get(f"{base}/marketplace/small",
                            query_string={"preview": "1", "p.rate": "20", "agent": agent.id})
            body = await _text(r)
            _clean(body, "template preview")
            assert "limit 20/second" in body and "In plain words" in body and "runs nothing yet" in body
            r = await c.post(f"{base}/marketplace/small/install", form={
                "csrf_token": t.owner.csrf, "version": "3", "p.rate": "20", "name": "game", "tags": "game eu"})
            assert r.status_code == 302
            entry_url = r.headers["Location"]
            body = await _text(await c.get(entry_url))
            _clean(body, "entry")
            assert "from template small version 3" in body and "<code>20</code>" in body
            await marketplace.publish(h.rt, CLI, V4)
            body = await _text(await c.get(entry_url))
            assert "Upgrade to small version 4" in body and "+pass tcp from @admins dport { 22, 2222 }" in body
            r = await c.post(entry_url + "/upgrade", form={"csrf_token": t.owner.csrf})
            assert r.status_code == 302
            body = await _text(await c.get(entry_url))
            assert "from template small version 4" in body and 'class="diff-add">+pass tcp' in body
            r = await c.post(entry_url + "/deploy", form={"csrf_token": t.owner.csrf, "version": "2",
                                                          "agent": agent.id, "canary": agent.id})
            assert r.status_code == 302 and r.headers["Location"].endswith("/deployments")
            body = await _text(await c.get(f"{base}/library", query_string={"q": "gam"}))
            _clean(body, "library")
            assert "small v4" in body and ">game</a>" in body
            body = await _text(await c.get(f"{base}/library", query_string={"tag": "nope"}))
            assert "Nothing matches" in body
            r = await c.post(entry_url + "/clone", form={"csrf_token": t.owner.csrf, "name": "game"})
            assert r.status_code == 302  # a duplicate name goes back with the reason
            assert "exists" in await _text(await c.get(r.headers["Location"]))

    run(go())


@pytest.mark.parametrize(("path", "query", "status"), [
    ("/marketplace/small", {"version": "abc"}, 400),
    ("/marketplace/small", {"version": "9" * 30}, 400),
    ("/marketplace/small", {"version": "7"}, 404),
    ("/marketplace/" + "x" * 64, {}, 404),
    ("/marketplace/small", {"preview": "1", "agent": "not-a-uuid"}, 200),
    ("/marketplace/small", {"preview": "1", "p.bans": 'x"}\npass\n'}, 200),
    ("/marketplace/small", {"preview": "1", "p.rate": "9" * 5000}, 200),
    ("/marketplace", {"q": "\x00" * 10, "tag": "'; drop"}, 200),
    ("/library", {"q": "%' OR 1=1 --"}, 200),
])
def test_hostile_queries_get_a_clear_answer(tmp_path, path, query, status):
    async def go():
        async with HubHarness(tmp_path) as h:
            await marketplace.publish(h.rt, CLI, SMALL)
            t = await h.tenant("acme")
            r = await t.owner.client.get(f"/t/{t.id}{path}", query_string=query)
            assert r.status_code == status
            assert "Traceback" not in await _text(r)

    run(go())


def test_writes_need_the_token_and_other_tenants_are_absent(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            await marketplace.publish(h.rt, CLI, SMALL)
            a, b = await h.tenant("a"), await h.tenant("b")
            r = await a.token.post(a.base + "/marketplace/install", json={"slug": "small", "name": "g"})
            pid = (await r.get_json())["policy_id"]
            entry = f"/t/{a.id}/library/{pid}"
            for path in (f"/t/{a.id}/marketplace/small/install", entry + "/describe", entry + "/clone",
                         entry + "/upgrade", entry + "/deploy"):
                r = await a.owner.client.post(path, form={"name": "x"})
                assert r.status_code == 403, path
            for path in (entry, f"/t/{b.id}/library/{pid}", f"/t/{a.id}/library", f"/t/{a.id}/marketplace"):
                assert (await b.owner.client.get(path)).status_code == 404, path
            r = await b.owner.client.post(f"/t/{b.id}/library/{pid}/clone",
                                          form={"name": "stolen", "csrf_token": b.owner.csrf})
            assert r.status_code == 404

    run(go())


def test_the_page_of_why_is_escaped_and_only_bold_and_code_are_markup():
    from hub.panel.market import why_blocks

    [(kind, body)] = why_blocks('<img src=x onerror=alert(1)> **bold** `code` "q"')
    assert kind == "p" and "<img" not in body and "&lt;img" in body
    assert "<strong>bold</strong>" in body and "<code>code</code>" in body
    assert why_blocks("- a\n- **b**\n\nplain\ntext") == [("ul", ["a", "<strong>b</strong>"]), ("p", "plain text")]
