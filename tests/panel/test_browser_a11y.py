"""Accessibility: axe-core (vendored by axe-playwright-python, no download) finds no serious
or critical violation on any panel page.

The pages are not listed here: every GET route of the panel blueprint is read from the
app's url_map, its parameters filled from the seeded tenant, so a page added later is
checked without touching this file (a route whose parameter has no seeded value fails
the test, naming it, rather than being skipped in silence).
"""
from __future__ import annotations

import re
import tempfile

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from hub.app import create_app
from hub.config import load_config
from tests.panel import hubproc
from tests.panel.conftest import shoot

BLOCKING = {"serious", "critical"}
NOT_PAGES = {"panel.static", "panel.deployment_progress", "panel.list_export", "panel.dashboard_trend"}  # files and JSON, not pages
# Pages that need a live secret link or a published template, which this walk does not make (their own
# browser tests open them: test_browser_account, test_browser_market; the email change link's page:
# tests/panel/test_account_pages.py); a wrong value is a 404 there.
NEEDS_A_LINK = {"panel.invitation", "panel.reset", "panel.template_page", "panel.account_email_link"}
BEFORE_SIGN_IN = {"panel.login", "panel.second_factor"}  # checked on the way in


def panel_routes() -> list[tuple[str, str, set[str]]]:
    """(endpoint, rule, parameter names) of every panel page answered to GET."""
    with tempfile.TemporaryDirectory() as d:
        app = create_app(load_config(env={}, data_dir=d))
        return sorted((r.endpoint, r.rule, set(r.arguments)) for r in app.url_map.iter_rules()
                      if r.endpoint.startswith("panel.") and "GET" in r.methods
                      and r.endpoint not in NOT_PAGES | NEEDS_A_LINK)


def fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule)


def blocking(axe: Axe, page) -> list[str]:
    found = axe.run(page).response["violations"]
    return [f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] if n["target"] else "?" for n in v["nodes"][:5])
            for v in found if v.get("impact") in BLOCKING]


def test_no_serious_or_critical_axe_violation_on_any_panel_page(page, hub):
    axe, problems = Axe(), []
    page.goto("/login")
    problems += blocking(axe, page)
    page.get_by_label("Email").fill(hubproc.ADMIN)
    page.get_by_label("Password").fill(hubproc.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Code")).to_be_visible()
    problems += blocking(axe, page)
    page.get_by_label("Code").fill(hub.next_code())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.goto(f"/t/{hub.tenant}/policies")
    page.get_by_label("Name").fill("a11y")
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_role("heading", name="Policy a11y")).to_be_visible()
    action = page.locator("form[action*='/policies/']").first.get_attribute("action")
    policy_id = re.search(r"/policies/([0-9a-f-]{36})", action).group(1)
    values = {"tenant_id": hub.tenant, "agent_id": hub.agent_id, "list_id": hub.list_id, "policy_id": policy_id,
}

    routes = panel_routes()
    unfilled = [f"{rule} needs {sorted(args - values.keys())}" for _, rule, args in routes if args - values.keys()]
    assert not unfilled, f"give these parameters a seeded value in this test: {unfilled}"
    assert len(routes) >= 10, routes  # the walk found the panel, not an empty map
    for endpoint, rule, _ in routes:
        if endpoint in BEFORE_SIGN_IN:
            continue
        page.goto(fill(rule, values))
        expect(page.locator("main"), page.url).to_be_visible()
        problems += blocking(axe, page)
    assert problems == [], "\n".join(problems)


    # Keyboard: the first Tab on a page (no autofocus there) reaches the skip link, shown
    # only when focused, and Enter moves on to the main content.
    page.goto(f"/t/{hub.tenant}/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    shoot(page, "a11y-skip-link")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
    expect(page.locator("main")).to_be_focused()

    # The check itself can fail: an unlabelled field is a critical violation to axe.
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><input type="text"></main></html>')
    assert any(" label (critical)" in p for p in blocking(axe, page))
