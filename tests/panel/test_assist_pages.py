"""The assistant, suggest-from-attack and replay pages without a browser: strict CSP
rules, CSRF tokens on forms, drafts shown and never deployed, refusals shown plainly."""
from __future__ import annotations

import asyncio
import time
import re

from hub.models import Deployment
from tests.hub.anthropic_fake import AnthropicFake
from tests.hub.harness import HubHarness, enroll
from tests.hub.test_replay_api import CANDIDATE, RUNNING, _capture
from tests.panel.test_pages import InlineFinder

GOOD = '```bulwark\npolicy "mc"\ndefault pass\npass udp dport 25565 limit 200/second burst 400 per src ipv4/24\n```'
LOCKOUT = '```bulwark\npolicy "evil"\ndefault pass\ndrop tcp dport 22\n```'


def _clean(html: str) -> None:
    finder = InlineFinder()
    finder.feed(html)
    assert finder.problems == []
    assert all("csrf_token" in f["inputs"] for f in finder.forms if f["method"] == "post")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_assistant_page_drafts_and_blocks_a_lockout(tmp_path):
    async def go():
        with AnthropicFake() as fake:
            async with HubHarness(tmp_path, anthropic_api_key="k", anthropic_base_url=fake.url,
                                  admin_prefixes=("198.51.100.0/24",), assistant_max_repairs=0) as h:
                t = await h.tenant()
                c = t.owner.client
                base = f"/t/{t.id}"
                html = await (await c.get(base + "/assistant")).get_data(as_text=True)
                _clean(html)
                fake.script = [{"text": GOOD}, {"text": LOCKOUT}]
                form = {"csrf_token": _csrf(html), "request": "floods on 25565 <script>alert(1)</script>"}
                html = await (await c.post(base + "/assistant", form=form)).get_data(as_text=True)
                _clean(html)
                assert "checks" in html and "Open in editor" in html and "expect pass udp" in html
                assert "<script>alert" not in html
                html = await (await c.post(base + "/assistant", form=form)).get_data(as_text=True)
                assert "does not check" in html and "22" in html
                assert await Deployment.all().count() == 0

    asyncio.run(go())


def test_without_a_key_the_page_says_so(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant()
            html = await (await t.owner.client.get(f"/t/{t.id}/assistant")).get_data(as_text=True)
            assert "no Anthropic API key is configured" in html
            form = {"csrf_token": _csrf(html), "request": "x"}
            html = await (await t.owner.client.post(f"/t/{t.id}/assistant", form=form)).get_data(as_text=True)
            assert "no anthropic_api_key" in html

    asyncio.run(go())


def test_suggest_from_the_agent_page(tmp_path):
    async def go():
        with AnthropicFake() as fake:
            async with HubHarness(tmp_path, anthropic_api_key="k", anthropic_base_url=fake.url) as h:
                t = await h.tenant()
                agent = await enroll(t)
                now = int(time.time())
                r = await agent.post("/agent/v1/metrics", json={"top_sources": [
                    {"ts": now, "source": "203.0.113.9", "packets": 500},
                    {"ts": now, "source": "203.0.113.10", "packets": 400}]})
                assert r.status_code < 300, await r.get_data(as_text=True)
                c = t.owner.client
                html = await (await c.get(f"/t/{t.id}/agents/{agent.id}")).get_data(as_text=True)
                _clean(html)
                assert "Suggest a rule from this attack" in html
                fake.script = [{"text": GOOD}]
                html = await (await c.post(f"/t/{t.id}/agents/{agent.id}/suggest",
                                           form={"csrf_token": _csrf(html)})).get_data(as_text=True)
                assert "203.0.113.0/24 900" in html and "checks" in html
                assert "203.0.113.9" not in fake.requests[0]["messages"][0]["content"]

    asyncio.run(go())


def test_replay_page(tmp_path):
    async def go():
        async with HubHarness(tmp_path) as h:
            t = await h.tenant()
            r = await t.token.post(t.base + "/policies", json={"name": "running", "source": RUNNING})
            running = (await r.get_json())["id"]
            c = t.owner.client
            html = await (await c.get(f"/t/{t.id}/replay")).get_data(as_text=True)
            _clean(html)
            from quart.datastructures import FileStorage
            import io

            files = {"capture": FileStorage(io.BytesIO(_capture()), filename="c.pcap")}
            form = {"csrf_token": _csrf(html), "candidate_source": CANDIDATE, "running_id": running}
            html = await (await c.post(f"/t/{t.id}/replay", form=form, files=files)).get_data(as_text=True)
            _clean(html)
            assert "3 frame(s)" in html and "203.0.113.5" in html and "Differs from running: 2" in html
            form["candidate_source"] = 'policy "x"\npass tcp dport 99999\n'
            files = {"capture": FileStorage(io.BytesIO(_capture()), filename="c.pcap")}
            html = await (await c.post(f"/t/{t.id}/replay", form=form, files=files)).get_data(as_text=True)
            assert "Not replayed" in html

    asyncio.run(go())


def test_replay_page_from_an_agents_capture(tmp_path):
    async def go():
        from hub.services import captures

        async with HubHarness(tmp_path) as h:
            t = await h.tenant()
            agent = await enroll(t)
            asked = await (await t.token.post(t.base + "/captures", json={"agent_id": agent.id})).get_json()
            assert (await agent.post(f"/agent/v1/captures/{asked['id']}", data=_capture())).status_code == 200
            assert captures.listing(h.rt, t.id)[0]["id"] == asked["id"]
            c = t.owner.client
            html = await (await c.get(f"/t/{t.id}/replay")).get_data(as_text=True)
            assert asked["id"] in html
            form = {"csrf_token": _csrf(html), "candidate_source": CANDIDATE, "capture_id": asked["id"]}
            html = await (await c.post(f"/t/{t.id}/replay", form=form)).get_data(as_text=True)
            assert "3 frame(s)" in html
            form["capture_id"] = "../../etc/passwd"
            html = await (await c.post(f"/t/{t.id}/replay", form=form)).get_data(as_text=True)
            assert "Not replayed" in html

    asyncio.run(go())
