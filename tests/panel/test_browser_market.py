"""The marketplace and the library as a person uses them, in a real browser against a
real hub whose templates were published by `bulwark hub publish-templates` (the
publication pipeline, guard included)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.panel import hubproc
from tests.panel.conftest import LIST_SIZE, shoot, via_menu
from tests.panel.test_browser import sign_in

pytestmark = pytest.mark.kernel
SHIPPED = Path(__file__).resolve().parents[2] / "rules_dsl" / "shipped"


def publish(proc, *files) -> str:
    out = subprocess.run(proc.command("publish-templates", *map(str, files)), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("market")
    proc = hubproc.start_hub(tmp)
    try:
        printed = publish(proc)
        assert printed.count("published version 1") == len(list(SHIPPED.glob("*.toml")))
        seeded = hubproc.seed(proc.url, LIST_SIZE)
        seeded.proc, seeded.tmp = proc, tmp
        yield seeded
    finally:
        proc.stop()


def test_browse_preview_install_search_upgrade_and_deploy(page, hub):
    sign_in(page, hub, hub.recovery_codes[0])
    via_menu(page, "More in Policies", "Marketplace")
    expect(page.get_by_role("heading", name="Marketplace")).to_be_visible()
    expect(page.get_by_role("row")).to_have_count(len(list(SHIPPED.glob("*.toml"))) + 1)
    shoot(page, "20-marketplace")
    page.get_by_label("Search templates").fill("minecraft")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("row")).to_have_count(3)
    page.get_by_role("link", name="Minecraft: Bedrock Edition server").click()
    expect(page.get_by_role("heading", name="Why")).to_be_visible()

    page.get_by_label(re.compile("^player_pps")).fill("5")
    page.get_by_label("Compare with what an agent runs").select_option(label="edge-1")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert")).to_contain_text("player_pps must be from 20 to 5000, not 5")
    shoot(page, "21-template-bad-parameter")
    page.get_by_label(re.compile("^player_pps")).fill("300")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="In plain words")).to_be_visible()
    expect(page.get_by_label("Rendered policy")).to_contain_text("limit 300/second burst 400 per src")
    expect(page.get_by_text("The agent runs nothing yet.")).to_be_visible()
    shoot(page, "22-template-preview")
    page.get_by_label("Name", exact=True).fill("bedrock-eu")
    page.get_by_label("Description").fill("Frankfurt Bedrock realm")
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_role("status").filter(has_text="Installed minecraft-bedrock as bedrock-eu.")).to_be_visible()
    expect(page.get_by_text("from template minecraft-bedrock version 1")).to_be_visible()
    shoot(page, "23-library-entry")

    # a new version of the template: the entry shows the upgrade's diff
    v2 = (SHIPPED / "minecraft-bedrock.toml").read_text().replace("version = 1", "version = 2").replace(
        "limit 5/second burst 10 per src", "limit 10/second burst 20 per src")
    (hub.tmp / "bedrock-v2.toml").write_text(v2)
    assert "published version 2" in publish(hub.proc, hub.tmp / "bedrock-v2.toml")
    via_menu(page, "More in Policies", "Library")
    page.get_by_role("link", name="bedrock-eu").click()
    expect(page.get_by_role("heading", name="Upgrade to minecraft-bedrock version 2")).to_be_visible()
    icmp = "pass icmp type { echo-request, destination-unreachable } limit"
    expect(page.get_by_label("Changes the upgrade makes")).to_contain_text(f"+{icmp} 10/second")
    shoot(page, "24-library-upgrade-diff")
    page.get_by_role("button", name=re.compile("^Upgrade")).click()
    expect(page.get_by_role("status").filter(has_text="Upgraded: saved version 2.")).to_be_visible()
    expect(page.get_by_label("Changes between the versions")).to_contain_text(f"-{icmp} 5/second")
    shoot(page, "25-library-versions-diff")

    via_menu(page, "More in Policies", "Library")
    page.get_by_label("Search the library").fill("frankfurt")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("row")).to_have_count(2)
    expect(page.get_by_role("row", name=re.compile("bedrock-eu"))).to_contain_text("minecraft-bedrock v2")
    shoot(page, "26-library-search")
    page.get_by_role("link", name="bedrock-eu").click()
    page.get_by_role("group", name=re.compile("Canary first")).get_by_label("edge-1").check()
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Deployed bedrock-eu version 2")).to_be_visible()
    shoot(page, "27-deployed-from-library")
