"""A two-stage rollout from the editor, as a person watches it: the canary gets the Plan
alone, the rest follow once it applied it, then the rollout is complete; a rollback is
followed the same way. Two agents enrolled through the real agent protocol report what
they applied; the page (rollout.js, no reload) follows each step.

Every wait is on the condition the page shows, with a generous bound: the page polls
every two seconds, and a loaded machine may take several polls."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.panel import hubproc
from tests.panel.conftest import LIST_SIZE, shoot
from tests.panel.test_browser import set_source, sign_in

STEP_MS = 60000
V2 = 'policy "edge"\ndefault pass\n\ndrop tcp dport 9999\n'
V3 = V2 + "drop udp dport 9999\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    proc = hubproc.start_hub(tmp_path_factory.mktemp("canary"))
    try:
        yield hubproc.seed(proc.url, LIST_SIZE, more_agents=("edge-2",))
    finally:
        proc.stop()


def _targets(rollout, expected: dict[str, tuple[str, str]]) -> None:
    """Each agent's row in the rollout: (role, status)."""
    for agent, (role, status) in expected.items():
        row = rollout.get_by_role("row").filter(has=rollout.page.get_by_role("cell", name=agent, exact=True))
        expect(row.get_by_role("cell")).to_have_text([agent, role, status], timeout=STEP_MS)


def _deploy_with_canary(page, version: int) -> str:
    page.get_by_role("checkbox", name="edge-1 as a canary").check()
    expect(page.get_by_role("checkbox", name="Deploy to edge-2")).to_be_checked()
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_role("status").filter(has_text=f"Deployed edge version {version}")).to_contain_text(
        "to 2 agent(s), 1 canary first")
    return page.locator("[data-rollout] h2 code").first.get_attribute("title")


def test_canary_first_then_the_rest_then_complete_and_a_rollback_followed(page, hub):
    sign_in(page, hub, hub.recovery_codes[5])
    page.goto(f"/t/{hub.tenant}/policies")
    page.get_by_label("Name").fill("edge")
    page.get_by_role("button", name="Create policy").click()
    set_source(page, V2)
    page.get_by_role("button", name="Save and check").click()
    expect(page.get_by_role("status").filter(has_text="Saved version 2: no errors.")).to_be_visible()

    v2 = _deploy_with_canary(page, 2)
    rollout = page.get_by_role("region", name=re.compile("Rollout of"))
    # Stage one: only the canary has the Plan; the other waits.
    expect(rollout).to_contain_text("canary")
    expect(rollout).to_contain_text("0 of 2 applied")
    _targets(rollout, {"edge-1": ("canary", "released"), "edge-2": ("target", "pending")})
    shoot(page, "30-canary-stage-one")

    hubproc.report_status(hub, applied=v2, agent="edge-1")  # the canary applied it
    # Stage two: released to the rest; the page follows by itself.
    expect(rollout).to_contain_text("1 of 2 applied", timeout=STEP_MS)
    expect(rollout.locator("[data-rollout-state]")).to_have_text("released", timeout=STEP_MS)
    _targets(rollout, {"edge-1": ("canary", "applied"), "edge-2": ("target", "released")})
    expect(rollout.get_by_role("row").nth(1)).to_contain_text("canary")  # the canary stands first
    history = page.get_by_role("region", name="Deployed digests")
    expect(history.get_by_role("row").nth(1).locator(".badge")).to_have_text("released")  # its row follows too
    shoot(page, "31-canary-stage-two")

    hubproc.report_status(hub, applied=v2, agent="edge-2")
    expect(rollout.locator("[data-rollout-state]")).to_have_text("complete", timeout=STEP_MS)
    expect(rollout).to_contain_text("2 of 2 applied")
    _targets(rollout, {"edge-1": ("canary", "applied"), "edge-2": ("target", "applied")})
    expect(rollout.locator("progress")).to_have_attribute("value", "2")
    expect(history.get_by_role("row").nth(1).locator(".badge")).to_have_text("complete")
    shoot(page, "32-canary-complete")

    # A second version, canary first again, then back to the first digest.
    set_source(page, V3)
    page.get_by_role("button", name="Save and check").click()
    expect(page.get_by_role("status").filter(has_text="Saved version 3: no errors.")).to_be_visible()
    v3 = _deploy_with_canary(page, 3)
    assert v3 != v2
    hubproc.report_status(hub, applied=v3, agent="edge-1")
    expect(rollout.locator("[data-rollout-state]")).to_have_text("released", timeout=STEP_MS)

    page.get_by_role("button", name=f"Roll back to {v2[:12]}").click()
    expect(page.get_by_role("status").filter(has_text=f"Rolled back to {v2[:12]}")).to_be_visible()
    expect(page.get_by_role("heading", name="Policy edge")).to_be_visible()
    rollout = page.get_by_role("region", name=re.compile("Rollout of"))
    expect(rollout.locator("h2 code")).to_have_attribute("title", v2)  # the rollback's own rollout
    expect(rollout).to_contain_text("0 of 2 applied")
    _targets(rollout, {"edge-1": ("target", "released"), "edge-2": ("target", "released")})
    shoot(page, "33-rollback-released")
    hubproc.report_status(hub, applied=v2, agent="edge-1")
    expect(rollout).to_contain_text("1 of 2 applied", timeout=STEP_MS)
    hubproc.report_status(hub, applied=v2, agent="edge-2")
    expect(rollout.locator("[data-rollout-state]")).to_have_text("complete", timeout=STEP_MS)
    _targets(rollout, {"edge-1": ("target", "applied"), "edge-2": ("target", "applied")})
    history = page.get_by_role("region", name="Deployed digests")
    expect(history.get_by_role("row").filter(has_text="rollback")).to_have_count(1)
    shoot(page, "34-rollback-complete")
