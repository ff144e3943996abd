"""The header's navigation: one row at a laptop's width, usable on a phone, menus that
open with the keyboard and without JavaScript, aria-current on the page shown."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.panel.conftest import open_menu, shoot, via_menu
from tests.panel.test_browser import sign_in

SECTIONS = ["Dashboard", "Policies", "Lists", "Alerts", "Audit log", "Tenant"]


def _rows(page) -> int:
    """How many rows the header's section links take."""
    tops = page.locator(".section-link").evaluate_all("els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    return len(set(tops))


def test_one_row_at_1280_menus_by_keyboard_and_aria_current(page, hub):
    sign_in(page, hub, hub.recovery_codes[6])
    nav = page.get_by_role("navigation", name="Main")
    for name in SECTIONS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert _rows(page) == 1
    header = page.locator("header").bounding_box()
    assert header["height"] < 70, header  # brand, sections and who on one line
    expect(nav.get_by_role("link", name="Dashboard", exact=True)).to_have_attribute("aria-current", "page")
    shoot(page, "nav-1280")

    # Keyboard: Tab reaches the Policies menu's summary, Enter opens it, Escape closes it.
    nav.get_by_role("link", name="Policies", exact=True).focus()
    page.keyboard.press("Tab")
    summary = nav.locator("summary", has_text="More in Policies")
    expect(summary).to_be_focused()
    page.keyboard.press("Enter")
    menu = nav.get_by_role("list", name="Policies")
    for name in ("Policies", "Deployments", "Library", "Marketplace", "Assistant", "Replay"):
        expect(menu.get_by_role("link", name=name, exact=True)).to_be_visible()
    shoot(page, "nav-1280-policies-menu")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(summary).to_be_focused()

    # A page in a menu: its link is the current page, its section is the current section.
    via_menu(page, "More in Policies", "Deployments")
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    expect(nav.get_by_role("link", name="Policies", exact=True)).to_have_attribute("aria-current", "true")
    items = open_menu(page, "More in Policies")
    expect(items.get_by_role("link", name="Deployments")).to_have_attribute("aria-current", "page")
    # Opening another menu closes this one.
    open_menu(page, "More in Tenant")
    expect(items).to_be_hidden()
    page.mouse.click(640, 500)  # a click outside closes it too
    expect(nav.get_by_role("list", name="Tenant")).to_be_hidden()

    # The account menu: the signed-in person's pages and signing out.
    account = open_menu(page, "Account")
    expect(account.get_by_role("link", name="Your account")).to_be_visible()
    expect(account.get_by_role("button", name="Sign out")).to_be_visible()
    shoot(page, "nav-1280-account-menu")


def test_a_phone_wide_page_has_no_sideways_scroll_and_its_menus_open(page, hub):
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, hub, hub.recovery_codes[7])
    page.goto(f"/t/{hub.tenant}/deployments")
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert _rows(page) <= 2
    shoot(page, "nav-375")
    menu = open_menu(page, "More in Policies")
    box = menu.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box  # opens inside the screen
    shoot(page, "nav-375-policies-menu")
    menu.get_by_role("link", name="Library", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Library"))).to_be_visible()
    account = open_menu(page, "Account")
    box = account.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    shoot(page, "nav-375-account-menu")


def test_menus_open_without_javascript(browser, hub):
    context = browser.new_context(base_url=hub.url, viewport={"width": 1280, "height": 860}, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, hub, hub.recovery_codes[8])
        via_menu(page, "More in Tenant", "Members")
        expect(page.get_by_role("heading", name="Members")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenant", exact=True)) \
            .to_have_attribute("aria-current", "true")
        open_menu(page, "Account").get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        context.close()
