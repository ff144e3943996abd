"""The demo's live screen: pure text from what was observed (no I/O here)."""
from __future__ import annotations

from dataclasses import dataclass

from agent.sampler import rule_name
from demo.observe import Enforced

TEXT_WIDTH = 58


@dataclass(frozen=True)
class AgentView:
    name: str
    addr: str
    ns: str
    kernel: Enforced                 # what the pins say
    daemon: dict | None              # the agent's /status, None while it does not answer
    legit_recent: tuple[int, int] = (0, 0)  # (ok, attempts) in the recent window
    legit_total: tuple[int, int] = (0, 0)


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _pct(ok: int, total: int) -> str:
    return f"{100 * ok / total:.1f} %" if total else "-"


def render_agent(v: AgentView, window_s: float) -> list[str]:
    xdp = f"xdp {v.kernel.xdp_mode}" if v.kernel.xdp_mode else "xdp NOT attached"
    if v.daemon is None:
        state = "daemon not answering (protections stay)"
    else:
        hub = v.daemon.get("hub", {}).get("connected")
        state = f"{v.daemon.get('mode')}, hub {'connected' if hub else 'unreachable'}"
    lines = [f"agent {v.name}  {v.addr} in netns {v.ns}  plan {(v.kernel.digest or 'none')[:12]}  {xdp}, {state}",
             f"  {'rule':<{TEXT_WIDTH}} {'passed':>10} {'dropped':>10} {'pass/s':>8} {'drop/s':>8}"]
    rates = (v.daemon or {}).get("rates", {})
    for r in v.kernel.rules:
        rate = rates.get(rule_name(r.slot), {})
        pps, dps = rate.get("pps"), rate.get("dps")
        text = r.text if len(r.text) <= TEXT_WIDTH else r.text[:TEXT_WIDTH - 1] + "…"
        lines.append(f"  {text:<{TEXT_WIDTH}} {_n(r.passed):>10} {_n(r.dropped):>10} "
                     f"{_n(pps - dps) if pps is not None else '-':>8} {_n(dps) if dps is not None else '-':>8}")
    if not v.kernel.rules:
        lines.append("  (no packets counted yet)")
    (ok, n), (tok, tn) = v.legit_recent, v.legit_total
    lines.append(f"  legitimate HTTP requests: {_pct(ok, n)} succeeded in the last {window_s:.0f} s "
                 f"({ok}/{n}); {tok:,}/{tn:,} since the start")
    return lines


def render(views: list[AgentView], *, hub_url: str, elapsed_s: float, window_s: float,
           sent_pps: float, notes: tuple[str, ...] = ()) -> str:
    """The whole screen; `notes` (sign-in details, say) go under the title line."""
    m, s = divmod(int(elapsed_s), 60)
    lines = [f"Bulwark demo: hub {hub_url}  up {m:02d}:{s:02d}  attack traffic ~{sent_pps:,.0f} packets/s  "
             f"(Ctrl-C to stop)", *notes, ""]
    for v in views:
        lines += render_agent(v, window_s) + [""]
    return "\n".join(lines)
