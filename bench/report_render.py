"""REPORT.md from REPORT.json's entries: a table per area, each figure beside its peer from
the same run, the target of the issue that set it and whether it is met, and when (and
at which commit, under which load) its bench ran. Pure: entries in, text out.

Every bench that bench/report.py runs has at least one row here (checked at import:
a bench added without rows would run and never be seen).
"""
from __future__ import annotations

from dataclasses import dataclass

AREAS = ("Rule DSL", "XDP guard", "Agent", "Hub", "End to end at 1M scale", "Panel")


@dataclass(frozen=True)
class Figure:
    """One row. `key` is "bench.figure". `target` is (op, bound) on the figure itself, or
    on the ratio figure/peer when `on_ratio` is set (`>=` then reads "at least bound times
    faster", i.e. peer/figure >= bound). `issue` is the issue that set the target (or
    asked for the measure)."""
    area: str
    issue: int | None
    label: str
    key: str
    unit: str
    peer_label: str = ""
    peer_key: str | None = None
    peer_quote: str = ""  # a peer quoted rather than measured
    target: tuple[str, float] | None = None
    on_ratio: bool = False

    @property
    def bench(self) -> str:
        return self.key.split(".", 1)[0]


CROWDSEC = "CrowdSec bouncer: polls every 10 s (up to 10,000 ms)"
NFT_LOAD = ("nft -f, same addresses", "guard.nft_load_1m_s")
XDP_PASSED = ("xdp-filter, passed", "guard.xdp_filter_passed_ns")
XDP_DENIED = ("xdp-filter, denied", "guard.xdp_filter_denied_ns")
LIKE = "LIKE 'prefix%' (the query before)"


def LONG_POLL_10K(figure: str) -> tuple[str, str]:  # noqa: N802 (reads as the constants beside it)
    """The streamed form's peer: the same agents asking one request a change."""
    return "same agents, long-poll (one request a change)", f"hub_longpoll_10k_pg2_longpoll.{figure}"

F = Figure
FIGURES = [
    F("Rule DSL", 3, "parse + check + compile, 1,000 rules", "dsl.rules_1000_s", "s",
      "nft -c -f, 1,000 rules", "dsl.nft_check_1000_s", target=("<=", 1.0)),
    F("Rule DSL", 3, "policy referencing a 1,000,000-entry list", "dsl.list_1m_policy_s", "s", target=("<=", 1.0)),
    F("Rule DSL", 3, "reference evaluator, per packet (1M-entry list)", "dsl.evaluator_packet_us", "us"),
    F("Rule DSL", 3, "reference evaluator, index of the 1M-entry list", "dsl.evaluator_index_1m_s", "s"),

    F("XDP guard", 4, "empty Plan, per packet", "guard.empty_plan_ns", "ns", *XDP_PASSED),
    F("XDP guard", 4, "realistic Plan, passed packet", "guard.realistic_passed_ns", "ns", *XDP_PASSED,
      target=("<=", 2.0), on_ratio=True),
    F("XDP guard", 4, "realistic Plan, denied packet", "guard.realistic_denied_ns", "ns", *XDP_DENIED,
      target=("<=", 2.0), on_ratio=True),
    F("XDP guard", 4, "realistic Plan, rate-limited packet", "guard.realistic_limited_ns", "ns", *XDP_PASSED),
    F("XDP guard", 4, "deny list 1,000,000 entries, passed", "guard.deny_1m_passed_ns", "ns",
      "same, 1,000 entries", "guard.deny_1k_passed_ns", target=("<", 1.5), on_ratio=True),
    F("XDP guard", 4, "1,000 rules the packet does not match", "guard.rules_1000_ns", "ns",
      "same, 20 rules", "guard.rules_20_ns", target=("<=", 2.0), on_ratio=True,
      peer_quote="XDP-Firewall (quoted): 399 ns at 20 rules, 1,511 ns at 100"),
    F("XDP guard", 11, "load a new 1,000,000-entry snapshot from the packed form (agent: hub document -> flip)",
      "guard.guard_load_1m_packed_s", "s", *NFT_LOAD, target=(">=", 10.0), on_ratio=True),
    F("XDP guard", 11, "the same, against its own bound", "guard.guard_load_1m_packed_s", "s", target=("<=", 0.25)),
    F("XDP guard", 11, "of which laying the host table out", "guard.host_table_build_1m_s", "s"),
    F("XDP guard", 4, "load 1,000,000 deny entries from text", "guard.guard_load_1m_s", "s", *NFT_LOAD,
      target=("<", 0.5)),
    F("XDP guard", 4, "one-entry change, 1,000,000-entry list", "guard.one_entry_change_ms", "ms", target=("<", 1.0)),
    F("XDP guard", 11, "realistic Plan, denied packet, 200 deltas live", "guard.realistic_denied_deltas_ns", "ns",
      *XDP_DENIED),
    F("XDP guard", 11, "host added by a one-entry change, denied", "guard.delta_denied_ns", "ns", *XDP_DENIED),

    F("Agent", 6, "idle RSS, 1,000,000-entry list, standalone", "agent.idle.median.idle_rss_mb", "MB",
      target=("<", 80.0)),
    F("Agent", 6, "idle CPU, 1,000,000-entry list, standalone", "agent.idle.median.idle_cpu_percent", "% of a core",
      target=("<", 1.0)),
    F("Agent", 6, "idle RSS, 1,000,000-entry list, managed (hub not answering)",
      "agent.idle_managed.median.idle_rss_mb", "MB", target=("<", 80.0)),
    F("Agent", 6, "idle CPU, 1,000,000-entry list, managed (hub not answering)",
      "agent.idle_managed.median.idle_cpu_percent", "% of a core", target=("<", 1.0)),
    F("Agent", 6, "start to 1,000,000-entry Plan applied", "agent.idle.median.start_to_applied_s", "s"),
    F("Agent", 6, "signed hub document to maps, 1M-entry snapshot", "agent.latency.median.initial_apply_1M_s", "s"),
    F("Agent", 6, "signed hub document to maps, 1-entry delta", "agent.latency.median.delta_1_s", "s"),
    F("Agent", 6, "signed hub document to maps, 100,000-entry delta", "agent.latency.median.delta_100000_s", "s",
      "whole re-apply", "agent.latency.median.whole_reapply_s"),
    F("Agent", 11, "lockout guard on a hub Plan, 1M-entry hub-shaped list, median", "lockout.median_ms", "ms",
      target=("<=", 5.0)),
    F("Agent", 11, "the same, p90", "lockout.p90_ms", "ms"),
    F("Agent", 11, "the same, worst", "lockout.worst_ms", "ms"),

    F("Hub", 5, "list change to 1,000 waiting agents, p50 (SQLite)", "hub_longpoll.p50_ms", "ms", peer_quote=CROWDSEC),
    F("Hub", 5, "list change to 1,000 waiting agents, p99 (SQLite)", "hub_longpoll.p99_ms", "ms", peer_quote=CROWDSEC,
      target=("<=", 250.0)),
    F("Hub", 5, "hub CPU per change, 1,000 agents (SQLite)", "hub_longpoll.hub_cpu_ms", "ms"),
    F("Hub", 5, "list change to 1,000 waiting agents, p99 (PostgreSQL)", "hub_longpoll_pg.p99_ms", "ms",
      target=("<=", 250.0)),
    F("Hub", 5, "list change to 1,000 waiting agents, p99 (PostgreSQL, 2 hub processes)",
      "hub_longpoll_pg2.p99_ms", "ms", target=("<=", 250.0)),
    F("Hub", 11, "list change to 10,000 streaming agents, p50 (PostgreSQL, 2 hub processes)",
      "hub_longpoll_10k_pg2.p50_ms", "ms", *LONG_POLL_10K("p50_ms")),
    F("Hub", 11, "list change to 10,000 streaming agents, p99 (PostgreSQL, 2 hub processes)",
      "hub_longpoll_10k_pg2.p99_ms", "ms", *LONG_POLL_10K("p99_ms"), target=("<=", 1000.0)),
    F("Hub", 11, "hub CPU per change, 10,000 agents (PostgreSQL, 2 hub processes)",
      "hub_longpoll_10k_pg2.hub_cpu_ms", "ms", *LONG_POLL_10K("hub_cpu_ms")),
    F("Hub", None, "list change to 10,000 long-polling agents, p99 (PostgreSQL, 2 hub processes)",
      "hub_longpoll_10k_pg2_longpoll.p99_ms", "ms", peer_quote=CROWDSEC),
    # The bench offers exactly 1,000 batches/s (open loop); carrying 99 % of the offer
    # within its timing window is carrying the target rate.
    F("Hub", 5, "metrics batches per second carried of 1,000/s offered (SQLite)", "hub_metrics.batches_per_s", "/s",
      target=(">=", 990.0)),
    F("Hub", 5, "metrics batch p99 latency (SQLite)", "hub_metrics.p99_ms", "ms", target=("<=", 200.0)),
    F("Hub", 5, "metrics batches per second carried of 1,000/s offered (PostgreSQL)",
      "hub_metrics_pg.batches_per_s", "/s", target=(">=", 990.0)),
    F("Hub", 5, "metrics batch p99 latency (PostgreSQL)", "hub_metrics_pg.p99_ms", "ms", target=("<=", 200.0)),
    F("Hub", 5, "metrics batches per second carried of 1,000/s offered (PostgreSQL, 2 hub processes)",
      "hub_metrics_pg2.batches_per_s", "/s", target=(">=", 990.0)),
    F("Hub", 5, "metrics batch p99 latency (PostgreSQL, 2 hub processes)", "hub_metrics_pg2.p99_ms", "ms",
      target=("<=", 200.0)),
    F("Hub", 5, "import a 1,000,000-entry list through the API (SQLite)", "hub_lists.import_s", "s"),
    F("Hub", 11, "its snapshot to a new agent (sent, decoded, persisted)", "hub_lists.snapshot_s", "s",
      target=("<=", 1.0)),
    F("Hub", 11, "the same after a one-entry change", "hub_lists.snapshot_after_change_s", "s", target=("<=", 1.0)),
    F("Hub", 11, "the snapshot's size on the wire", "hub_lists.snapshot_mb", "MB"),
    F("Hub", 5, "one entry changed in it (API call)", "hub_lists.change_ms", "ms"),
    F("Hub", 5, "that change as a delta to an agent", "hub_lists.delta_ms", "ms"),
    F("Hub", 5, "hub peak RSS with the list", "hub_lists.hub_peak_rss_mb", "MB"),

    F("End to end at 1M scale", 11, "one-entry change, API call to last packet behind the guard, p50 (SQLite)",
      "e2e_scale.change_p50_ms", "ms", "same, small list", "e2e_scale.small_change_p50_ms"),
    F("End to end at 1M scale", 11, "one-entry change, API call to last packet behind the guard, p99 (SQLite)",
      "e2e_scale.change_p99_ms", "ms", "same, small list", "e2e_scale.small_change_p99_ms", target=("<=", 100.0)),
    F("End to end at 1M scale", 11, "import 1,000,000 entries to enforced on both agents (SQLite)",
      "e2e_scale.import_to_enforced_s", "s", target=("<=", 15.0)),
    F("End to end at 1M scale", 11, "the import call (SQLite)", "e2e_scale.import_s", "s"),
    F("End to end at 1M scale", 11, "slowest /healthz during the import (SQLite)",
      "e2e_scale.healthz_max_during_import_ms", "ms"),
    F("End to end at 1M scale", 11, "agent idle RSS with the 1M list, managed by a real hub (SQLite)",
      "e2e_scale.agent_idle_rss_mb", "MB", target=("<", 80.0)),
    F("End to end at 1M scale", 11, "agent idle CPU with the 1M list, managed by a real hub (SQLite)",
      "e2e_scale.agent_idle_cpu_percent", "% of a core", target=("<", 1.0)),
    F("End to end at 1M scale", 11, "hub RSS after the import and changes (SQLite)", "e2e_scale.hub_rss_mb", "MB"),
    F("End to end at 1M scale", 11, "one-entry change to last packet, p99 (PostgreSQL, 2 hub processes)",
      "e2e_scale_pg2.change_p99_ms", "ms", "same, small list", "e2e_scale_pg2.small_change_p99_ms",
      target=("<=", 100.0)),
    F("End to end at 1M scale", 11, "import to enforced on both agents (PostgreSQL, 2 hub processes)",
      "e2e_scale_pg2.import_to_enforced_s", "s", target=("<=", 15.0)),
    F("End to end at 1M scale", 11, "the import call (PostgreSQL, 2 hub processes)", "e2e_scale_pg2.import_s", "s"),
    F("End to end at 1M scale", 11, "slowest /healthz during the import (PostgreSQL, 2 hub processes)",
      "e2e_scale_pg2.healthz_max_during_import_ms", "ms"),
    F("End to end at 1M scale", 11, "agent idle RSS with the 1M list (PostgreSQL, 2 hub processes)",
      "e2e_scale_pg2.agent_idle_rss_mb", "MB", target=("<", 80.0)),
    F("End to end at 1M scale", 11, "agent idle CPU with the 1M list (PostgreSQL, 2 hub processes)",
      "e2e_scale_pg2.agent_idle_cpu_percent", "% of a core", target=("<", 1.0)),

    F("Panel", 13, "dashboard with 100 agents, server-side render p95 (SQLite)", "panel.dashboard_p95_ms", "ms",
      "/healthz p95, same connection", "panel.healthz_p95_ms", target=("<=", 100.0)),
    F("Panel", 13, "the same, p50", "panel.dashboard_p50_ms", "ms"),
    F("Panel", None, "list page search in 1,000,000 entries, a /24's hosts", "list_search.host_prefix_ms", "ms",
      LIKE, "list_search.host_prefix_like_ms"),
    F("Panel", None, "list page search, a /16's hosts", "list_search.wide_prefix_ms", "ms",
      LIKE, "list_search.wide_prefix_like_ms"),
    F("Panel", None, "list page search, one host", "list_search.one_host_ms", "ms",
      LIKE, "list_search.one_host_like_ms"),
    F("Panel", None, "list page search, no match", "list_search.no_match_ms", "ms",
      LIKE, "list_search.no_match_like_ms"),
    F("Panel", None, "list page, last page without a search (OFFSET)", "list_search.last_page_ms", "ms",
      "same query before", "list_search.last_page_like_ms"),
]
del F


def check_covers(benches: list[str]) -> None:
    """Raises ValueError naming a bench without rows or a row of no bench."""
    shown = {f.bench for f in FIGURES}
    if missing := [b for b in benches if b not in shown]:
        raise ValueError(f"bench/report_render.py has no row for {', '.join(missing)}")
    if stray := sorted(shown - set(benches)):
        raise ValueError(f"bench/report_render.py has rows for unknown benches {', '.join(stray)}")
    if odd := [f.key for f in FIGURES if f.area not in AREAS]:
        raise ValueError(f"rows outside the areas: {', '.join(odd)}")


def fmt(value: float, unit: str) -> str:
    if value >= 100 or (value >= 10 and unit == "ns"):
        text = f"{value:,.0f}"
    elif value >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}"


def verdict(fig: Figure, value: float | None, peer: float | None) -> tuple[str, str]:
    """(target text, met text); met is empty for a row without a target."""
    if fig.target is None:
        return "", ""
    op, bound = fig.target
    sign = op.replace("<=", "≤").replace(">=", "≥")
    if fig.on_ratio:
        text = f"≥ {bound:g}x faster than the peer" if op == ">=" else f"{sign} {bound:g}x the peer"
    else:
        text = f"{sign} {bound:g} {fig.unit}"
    if fig.issue:
        text += f" (issue {fig.issue})"
    if value is None:
        return text, "not measured"
    if fig.on_ratio:
        if not peer or not value:
            return text, "no peer"
        ratio = peer / value if op == ">=" else value / peer
    else:
        ratio = value
    met = {"<": ratio < bound, "<=": ratio <= bound, ">=": ratio >= bound}[op]
    return text, "yes" if met else "**no**"


def when(entry: dict) -> str:
    """The run a bench's figures are from: its date (and time), its commit."""
    commit = entry.get("commit", "unknown")
    return f"{entry['date'].replace('T', ' ')}" + ("" if commit == "unknown" else f", {commit}")


def figure_of(store: dict, key: str) -> float | None:
    bench, _, name = key.partition(".")
    return store.get(bench, {}).get("figures", {}).get(name)


def runs_table(store: dict, benches: list[str]) -> list[str]:
    lines = ["| bench | measured | load average (1 min) at start → end | took | runs | last attempt |",
             "|---|---|---|---|---|---|"]
    for name in benches:
        entry = store.get(name)
        if entry is None:
            lines.append(f"| {name} | never | | | | not run |")
            continue
        load = entry.get("load_average")
        load_text = f"{load[0]:.2f} → {load[1]:.2f}" if load else "not recorded"
        took = f"{entry['took_s'] / 60:.1f} min" if "took_s" in entry else ""
        failed = entry.get("failed")
        status = f"**failed** {failed['date'].replace('T', ' ')}: {failed['error']}" if failed else "ok"
        measured = when(entry) if "figures" in entry else "never"
        lines.append(f"| {name} | {measured} | {load_text} | {took} | {entry.get('runs', '')} | {status} |")
    return lines


def rows(store: dict) -> list[str]:
    lines: list[str] = []
    for area in AREAS:
        lines += ["", f"## {area}", "",
                  "| measure | Bulwark | peer (same run) | ratio | target | met | measured |",
                  "|---|---|---|---|---|---|---|"]
        for fig in (f for f in FIGURES if f.area == area):
            entry = store.get(fig.bench, {})
            value = figure_of(store, fig.key)
            if value is None:
                failed = entry.get("failed")
                reason = f"failed: {failed['error']}" if failed else "not run"
                target, met = verdict(fig, None, None)
                lines.append(f"| {fig.label} | — ({reason}) | {fig.peer_quote} | | {target} | {met} | |")
                continue
            peer = figure_of(store, fig.peer_key) if fig.peer_key else None
            peer_text = "; ".join(x for x in (f"{fig.peer_label}: {fmt(peer, fig.unit)}" if peer is not None else "",
                                              fig.peer_quote) if x)
            ratio = "" if not peer or not value else \
                f"{value / peer:.2f}x slower" if value >= peer else \
                f"{peer / value:.2f}x faster" if peer < 10 * value else f"{peer / value:.1f}x faster"
            target, met = verdict(fig, value, peer)
            measured = when(entry)
            if entry.get("failed"):
                measured += f"; re-run {entry['failed']['date'][:10]} failed"
            lines.append(f"| {fig.label} | {fmt(value, fig.unit)} | {peer_text} | {ratio} | {target} | {met} "
                         f"| {measured} |")
    return lines


def misses(store: dict) -> list[str]:
    """The rows whose target is not met, or not measured, as one line each."""
    out = []
    for fig in FIGURES:
        if fig.target is None:
            continue
        value = figure_of(store, fig.key)
        target, met = verdict(fig, value, figure_of(store, fig.peer_key) if fig.peer_key else None)
        if met != "yes":
            shown = fmt(value, fig.unit) if value is not None else "—"
            out.append(f"- {fig.area}: {fig.label}: {shown}, target {target}: {met.strip('*')}")
    return out


def render(store: dict, benches: list[str], written: str) -> str:
    machines = sorted({e["machine"] for e in store.values() if e.get("machine")})
    lines = [
        "# Benchmark report",
        "",
        f"Rendered by bench/report.py on {written} from bench/REPORT.json, which keeps each bench's "
        "last figures with the date, commit and load of its run (`bench/report.py --render` re-renders, "
        "`--merge OTHER.json` takes in another branch's runs).",
        "Machine: " + ("; ".join(machines) if machines else "not recorded") + ".",
        "Every figure is a median of the bench's runs; peers were measured in the same run unless quoted. "
        "The machine is shared by other work (see the load averages): the ratios are steadier than the "
        "absolutes. A row's 'measured' says which run it is from; rows of different dates are different runs.",
        "",
        "## Runs",
        "",
        *runs_table(store, benches),
        "",
        "## Targets not met",
        "",
        *(misses(store) or ["None."]),
        *rows(store),
        "",
        "## Raw medians",
    ]
    for name in benches:
        entry = store.get(name, {})
        if entry.get("figures"):
            lines += ["", f"{name} ({when(entry)}):", "", "```",
                      *(f"{k} = {v:.6g}" for k, v in sorted(entry["figures"].items())), "```"]
    return "\n".join(lines) + "\n"
