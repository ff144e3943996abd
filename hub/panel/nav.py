"""The panel's main navigation as one table: a few sections, each a landing page and the
pages grouped under it, and which endpoints count as "here" for each page.

base.html draws it: a section with more than one page gets a disclosure menu
(<details>, so it opens without JavaScript; static/menus.js only closes it on Escape
or an outside click), and the page being shown carries aria-current.
"""
from __future__ import annotations

from dataclasses import dataclass

from hub.panel import bp


@dataclass(frozen=True)
class Item:
    label: str
    endpoint: str
    also: tuple[str, ...] = ()  # more endpoints that are this page (an entry of its index...)

    def matches(self, here: str) -> bool:
        return here == self.endpoint or here in self.also


@dataclass(frozen=True)
class Section:
    label: str
    items: tuple[Item, ...]

    @property
    def landing(self) -> Item:
        return self.items[0]

    def current(self, here: str) -> Item | None:
        return next((i for i in self.items if i.matches(here)), None)


NAV = (
    Section("Dashboard", (Item("Dashboard", "panel.dashboard", ("panel.agent", "panel.enrol")),)),
    Section("Policies", (
        Item("Policies", "panel.policies_index", ("panel.policy",)),
        Item("Deployments", "panel.deployments_index"),
        Item("Library", "panel.library_index", ("panel.library_entry",)),
        Item("Marketplace", "panel.marketplace_index", ("panel.template_page",)),
        Item("Assistant", "panel.assistant_page", ("panel.agent_suggest",)),
        Item("Replay", "panel.replay_page"),
    )),
    Section("Lists", (Item("Lists", "panel.lists_index", ("panel.list_page",)),)),
    Section("Alerts", (Item("Alerts", "panel.alerts_index"),)),
    Section("Audit log", (Item("Audit log", "panel.audit"),)),
    Section("Tenant", (
        Item("Settings", "panel.tenant_settings"),
        Item("Members", "panel.members"),
        Item("Billing", "panel.billing_page"),
    )),
)


@bp.app_context_processor
def _nav() -> dict[str, object]:
    return {"nav_sections": NAV}
