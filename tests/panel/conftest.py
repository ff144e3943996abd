"""Browser tests: a real hub process, Debian's chromium driven by Playwright (never a
downloaded browser), every page screenshotted under tests/artifacts/screenshots/.

The hub's CSP header comes from hub/headers.py; these tests also put the same policy on
every page through Playwright's routing, so a violation (inline script or style) shows up
as a console error here whether or not that middleware is installed.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.panel import hubproc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LIST_SIZE = 1234
BROWSER_WAIT_MS = 20000  # Playwright's waits (locators and expect): a guard against a hang on a loaded machine


def _generous_expect() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=BROWSER_WAIT_MS)  # its default, 5 s, flakes under parallel workers


_generous_expect()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).is_relative_to(here) and item.path.name.startswith("test_browser"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    proc = hubproc.start_hub(tmp_path_factory.mktemp("panel"), users=(hubproc.CLOSER,))
    try:
        yield hubproc.seed(proc.url, LIST_SIZE)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (the Makefile's APT_PACKAGES has it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Console:
    """Console errors and uncaught exceptions of a page (a CSP violation is one)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected_statuses: set[int] = set()

    def expect_status(self, status: int) -> None:
        """The test drives the page to an error answer on purpose (Chromium logs each one)."""
        self.expected_statuses.add(status)

    def _expected(self, text: str) -> bool:
        found = re.search(r"Failed to load resource: the server responded with a status of (\d+)", text)
        return found is not None and int(found.group(1)) in self.expected_statuses

    def attach(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and not self._expected(m.text)
                and self.errors.append(f"{page.url}: {m.text} [{m.location.get('url', '')}:{m.location.get('lineNumber', '')}]"))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))


@pytest.fixture
def page(browser, hub):
    context = browser.new_context(base_url=hub.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(BROWSER_WAIT_MS)

    from playwright.sync_api import Error

    def with_csp(route):
        try:
            response = route.fetch()
            route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})
        except Error:
            pass  # the page navigated on or closed meanwhile

    # Not the SSE stream: fetch() would wait for the end of a body that never ends.
    context.route(re.compile(r"^(?!.*/metrics/stream).*$"), with_csp)
    page = context.new_page()
    console = Console()
    console.attach(page)
    page.console = console
    yield page
    context.close()
    assert console.errors == [], console.errors


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if page.locator("[data-editor]").count():  # the page as it is once CodeMirror has mounted
        page.locator(".cm-editor").wait_for()
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_menu(page, section: str):
    """Open the header's disclosure menu of `section` (Policies, Tenant, Account, Tenant: X)
    as a person would, and answer its list of links."""
    menu = page.locator("header details").filter(has=page.locator("summary", has_text=section)).first
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    items = menu.get_by_role("list")
    expect(items).to_be_visible()
    return items


def via_menu(page, section: str, label: str) -> None:
    """Go to a page that sits in a section's menu (Deployments under Policies...)."""
    open_menu(page, section).get_by_role("link", name=label, exact=True).click()
