"""Run every benchmark under bench/ and write bench/REPORT.md: each figure beside its
peer from the same run, the target from its issue, and whether it is met.

    .venv/bin/python bench/report.py [--runs 5] [--only guard,dsl] [--out bench/REPORT.md]

The medians are kept beside the report (REPORT.json); with --only, the benches not run
keep their figures from there, marked with the date they were measured.

Each benchmark script takes `--json FILE` and writes a flat (or nested) dict of figures.
A script that repeats internally (`--runs`, `--rounds`) is run once with that many
repeats; the others are run `--runs` times. Either way a figure is the median of at
least `--runs` measurements. The machine is shared and noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    argv: Callable[[int], list[str]]  # runs -> arguments after the script path
    repeats_inside: bool  # True: one invocation already takes medians of `runs`
    timeout_s: float
    postgres: bool = False  # gets --database-url of a fresh database on a throwaway server


BENCHES = [
    Bench("dsl", "dsl", lambda runs: [], False, 300),
    Bench("guard", "guard", lambda runs: ["--runs", str(runs)], True, 1800),
    Bench("agent", "agent", lambda runs: ["--idle-s", "20", "--repeat", str(runs)], True, 1800),
    Bench("hub_longpoll", "hub_longpoll", lambda runs: ["--agents", "1000", "--rounds", str(runs)], True, 900),
    Bench("hub_longpoll_pg", "hub_longpoll", lambda runs: ["--agents", "1000", "--rounds", str(runs)], True, 900,
          postgres=True),
    Bench("hub_metrics", "hub_metrics", lambda runs: ["--rounds", str(runs)], True, 900),
    Bench("hub_metrics_pg", "hub_metrics", lambda runs: ["--rounds", str(runs)], True, 900, postgres=True),
    Bench("hub_longpoll_pg2", "hub_longpoll", lambda runs: ["--agents", "1000", "--rounds", str(runs),
                                                          "--hub-processes", "2"], True, 900, postgres=True),
    Bench("hub_metrics_pg2", "hub_metrics", lambda runs: ["--rounds", str(runs), "--hub-processes", "2"], True, 900,
          postgres=True),
    Bench("panel", "panel", lambda runs: ["--agents", "100", "--requests", "200", "--rounds", str(runs)], True, 900),
    Bench("hub_lists", "hub_lists", lambda runs: ["--rounds", str(runs)], True, 1800),
    # One run each: its 20 timed changes are the repeats (a 1M import per run is minutes).
    Bench("e2e_scale", "e2e_scale", lambda runs: [], True, 1800),
    Bench("e2e_scale_pg2", "e2e_scale", lambda runs: ["--hub-processes", "2"], True, 1800, postgres=True),
    Bench("hub_longpoll_10k_pg2", "hub_longpoll", lambda runs: ["--agents", "10000", "--rounds", str(runs),
                                                              "--hub-processes", "2"], True, 1800, postgres=True),
]


@dataclass(frozen=True)
class Figure:
    """One row of the report. `target` is (op, bound) on the figure itself, or on the
    ratio figure/peer when `on_ratio` is set (`>=` then reads "at least bound times faster",
    i.e. peer/figure >= bound)."""
    section: str
    label: str
    key: str
    unit: str
    peer_label: str = ""
    peer_key: str | None = None
    peer_quote: str = ""  # a peer quoted rather than measured
    target: tuple[str, float] | None = None
    on_ratio: bool = False


FIGURES = [
    Figure("Rule DSL (issue 3)", "parse + check + compile, 1,000 rules", "dsl.rules_1000_s", "s",
           "nft -c -f, 1,000 rules", "dsl.nft_check_1000_s", target=("<=", 1.0)),
    Figure("Rule DSL (issue 3)", "policy referencing a 1,000,000-entry list", "dsl.list_1m_policy_s", "s",
           target=("<=", 1.0)),
    Figure("Rule DSL (issue 3)", "reference evaluator, per packet (1M-entry list)", "dsl.evaluator_packet_us", "us"),
    Figure("XDP guard (issue 4)", "empty Plan, per packet", "guard.empty_plan_ns", "ns",
           "xdp-filter, passed", "guard.xdp_filter_passed_ns"),
    Figure("XDP guard (issue 4)", "realistic Plan, passed packet", "guard.realistic_passed_ns", "ns",
           "xdp-filter, passed", "guard.xdp_filter_passed_ns", target=("<=", 2.0), on_ratio=True),
    Figure("XDP guard (issue 4)", "realistic Plan, denied packet", "guard.realistic_denied_ns", "ns",
           "xdp-filter, denied", "guard.xdp_filter_denied_ns", target=("<=", 2.0), on_ratio=True),
    Figure("XDP guard (issue 4)", "realistic Plan, rate-limited packet", "guard.realistic_limited_ns", "ns",
           "xdp-filter, passed", "guard.xdp_filter_passed_ns"),
    Figure("XDP guard (issue 4)", "deny list 1,000,000 entries, passed", "guard.deny_1m_passed_ns", "ns",
           "same, 1,000 entries", "guard.deny_1k_passed_ns", target=("<", 1.5), on_ratio=True),
    Figure("XDP guard (issue 4)", "1,000 rules the packet does not match", "guard.rules_1000_ns", "ns",
           "same, 20 rules", "guard.rules_20_ns", target=("<=", 2.0), on_ratio=True,
           peer_quote="XDP-Firewall (quoted): 399 ns at 20 rules, 1,511 ns at 100"),
    Figure("XDP guard (issue 11)", "load a new 1,000,000-entry snapshot (agent: hub document -> flip)",
           "guard.guard_load_1m_packed_s", "s",
           "nft -f, same addresses", "guard.nft_load_1m_s", target=(">=", 10.0), on_ratio=True),
    Figure("XDP guard (issue 11)", "load a new 1,000,000-entry snapshot (agent: hub document -> flip)",
           "guard.guard_load_1m_packed_s", "s", target=("<=", 0.25)),
    Figure("XDP guard (issue 11)", "realistic Plan, denied packet, deltas live", "guard.realistic_denied_deltas_ns",
           "ns", "xdp-filter, denied", "guard.xdp_filter_denied_ns"),
    Figure("XDP guard (issue 11)", "host added by a one-entry change, denied", "guard.delta_denied_ns", "ns",
           "xdp-filter, denied", "guard.xdp_filter_denied_ns"),
    Figure("XDP guard (issue 4)", "load 1,000,000 deny entries (from text)", "guard.guard_load_1m_s", "s",
           "nft -f, same addresses", "guard.nft_load_1m_s", target=("<", 0.5)),
    Figure("XDP guard (issue 4)", "one-entry change, 1,000,000-entry list", "guard.one_entry_change_ms", "ms",
           target=("<", 1.0)),
    Figure("Agent (issue 6)", "idle RSS, 1,000,000-entry list, standalone", "agent.idle.median.idle_rss_mb", "MB",
           target=("<", 80.0)),
    Figure("Agent (issue 6)", "idle CPU, 1,000,000-entry list, standalone", "agent.idle.median.idle_cpu_percent",
           "% of a core", target=("<", 1.0)),
    Figure("Agent (issue 6)", "idle RSS, 1,000,000-entry list, managed", "agent.idle_managed.median.idle_rss_mb",
           "MB", target=("<", 80.0)),
    Figure("Agent (issue 6)", "idle CPU, 1,000,000-entry list, managed",
           "agent.idle_managed.median.idle_cpu_percent", "% of a core", target=("<", 1.0)),
    Figure("Agent (issue 6)", "start to 1,000,000-entry Plan applied", "agent.idle.median.start_to_applied_s", "s"),
    Figure("Agent (issue 6)", "desired state to maps, 1-entry delta", "agent.latency.median.delta_1_s", "s"),
    Figure("Agent (issue 6)", "desired state to maps, 100,000-entry delta", "agent.latency.median.delta_100000_s",
           "s", "whole re-apply", "agent.latency.median.whole_reapply_s"),
    Figure("Panel (issue 13)", "dashboard with 100 agents, server-side render p95 (SQLite)",
           "panel.dashboard_p95_ms", "ms", "/healthz p95, same connection", "panel.healthz_p95_ms",
           target=("<=", 100.0)),
    Figure("Hub (issue 5)", "list change to 1,000 waiting agents, p50 (SQLite)", "hub_longpoll.p50_ms", "ms",
           peer_quote="CrowdSec bouncer: polls every 10 s (up to 10,000 ms)"),
    Figure("Hub (issue 5)", "list change to 1,000 waiting agents, p99 (SQLite)", "hub_longpoll.p99_ms", "ms",
           peer_quote="CrowdSec bouncer: polls every 10 s (up to 10,000 ms)", target=("<=", 250.0)),
    Figure("Hub (issue 5)", "hub CPU per change, 1,000 agents (SQLite)", "hub_longpoll.hub_cpu_ms", "ms"),
    Figure("Hub (issue 5)", "list change to 1,000 waiting agents, p99 (PostgreSQL)", "hub_longpoll_pg.p99_ms", "ms",
           target=("<=", 250.0)),
    # The bench offers exactly 1,000 batches/s (open loop); carrying 99 % of the offer
    # within its timing window is carrying the target rate.
    Figure("Hub (issue 5)", "metrics batches per second carried of 1,000/s offered (SQLite)",
           "hub_metrics.batches_per_s", "/s", target=(">=", 990.0)),
    Figure("Hub (issue 5)", "metrics batch p99 latency (SQLite)", "hub_metrics.p99_ms", "ms", target=("<=", 200.0)),
    Figure("Hub (issue 5)", "metrics batches per second carried of 1,000/s offered (PostgreSQL)",
           "hub_metrics_pg.batches_per_s", "/s", target=(">=", 990.0)),
    Figure("Hub (issue 5)", "metrics batch p99 latency (PostgreSQL)", "hub_metrics_pg.p99_ms", "ms",
           target=("<=", 200.0)),
    Figure("Hub (issue 5)", "list change to 1,000 waiting agents, p99 (PostgreSQL, 2 hub processes)",
           "hub_longpoll_pg2.p99_ms", "ms", target=("<=", 250.0)),
    Figure("Hub (issue 5)", "metrics batches per second carried of 1,000/s offered (PostgreSQL, 2 hub processes)",
           "hub_metrics_pg2.batches_per_s", "/s", target=(">=", 990.0)),
    Figure("Hub (issue 5)", "metrics batch p99 latency (PostgreSQL, 2 hub processes)", "hub_metrics_pg2.p99_ms",
           "ms", target=("<=", 200.0)),
    Figure("Hub (issue 5)", "import a 1,000,000-entry list (SQLite)", "hub_lists.import_s", "s"),
    Figure("End to end (issue 11)", "one-entry change, API call to last packet behind the guard, p50, 1M list (SQLite)",
           "e2e_scale.change_p50_ms", "ms", "same, small list", "e2e_scale.small_change_p50_ms"),
    Figure("End to end (issue 11)", "one-entry change, API call to last packet behind the guard, p99, 1M list (SQLite)",
           "e2e_scale.change_p99_ms", "ms", "same, small list", "e2e_scale.small_change_p99_ms",
           target=("<=", 100.0)),
    Figure("End to end (issue 11)", "import 1,000,000 entries to enforced on both agents (SQLite)",
           "e2e_scale.import_to_enforced_s", "s", target=("<=", 15.0)),
    Figure("End to end (issue 11)", "the import call (SQLite)", "e2e_scale.import_s", "s"),
    Figure("End to end (issue 11)", "slowest /healthz during the import (SQLite)",
           "e2e_scale.healthz_max_during_import_ms", "ms"),
    Figure("End to end (issue 11)", "agent idle RSS with the 1M list, managed by a real hub",
           "e2e_scale.agent_idle_rss_mb", "MB", target=("<", 80.0)),
    Figure("End to end (issue 11)", "agent idle CPU with the 1M list, managed by a real hub",
           "e2e_scale.agent_idle_cpu_percent", "% of a core", target=("<", 1.0)),
    Figure("End to end (issue 11)", "hub RSS after the import and changes (SQLite)", "e2e_scale.hub_rss_mb", "MB"),
    Figure("End to end (issue 11)", "one-entry change to last packet, p99 (PostgreSQL, 2 hub processes)",
           "e2e_scale_pg2.change_p99_ms", "ms", "same, small list", "e2e_scale_pg2.small_change_p99_ms",
           target=("<=", 100.0)),
    Figure("End to end (issue 11)", "import to enforced on both agents (PostgreSQL, 2 hub processes)",
           "e2e_scale_pg2.import_to_enforced_s", "s", target=("<=", 15.0)),
    Figure("End to end (issue 11)", "the import call (PostgreSQL, 2 hub processes)", "e2e_scale_pg2.import_s", "s"),
    Figure("End to end (issue 11)", "slowest /healthz during the import (PostgreSQL, 2 hub processes)",
           "e2e_scale_pg2.healthz_max_during_import_ms", "ms"),
    Figure("End to end (issue 11)", "list change to 10,000 waiting agents, p99 (PostgreSQL, 2 hub processes)",
           "hub_longpoll_10k_pg2.p99_ms", "ms", peer_quote="CrowdSec bouncer: polls every 10 s (up to 10,000 ms)",
           target=("<=", 1000.0)),
    Figure("Hub (issue 5)", "its snapshot to a new agent", "hub_lists.snapshot_s", "s"),
    Figure("Hub (issue 5)", "one entry changed in it", "hub_lists.change_ms", "ms"),
    Figure("Hub (issue 5)", "that change as a delta to an agent", "hub_lists.delta_ms", "ms"),
    Figure("Hub (issue 5)", "hub peak RSS with the list", "hub_lists.hub_peak_rss_mb", "MB"),
]


def flatten(doc: dict, prefix: str) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in doc.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class Postgres:
    """The tests' throwaway PostgreSQL server (fsync off: a ceiling, not a production
    figure), started on first use."""

    def __init__(self) -> None:
        self.server = None

    def database_url(self) -> str:
        if self.server is None:
            sys.path.insert(0, str(ROOT))
            from tests.hub import postgres

            reason = postgres.unavailable()
            if reason:
                raise RuntimeError(f"PostgreSQL: {reason}")
            self.server = postgres.PostgresServer.start()
        return self.server.new_database()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def run_bench(bench: Bench, runs: int, pg: Postgres) -> tuple[dict[str, float], str]:
    """Medians of every figure the bench printed; an error text instead when it failed."""
    script = ROOT / "bench" / f"{bench.script}.py"
    if not script.exists():
        return {}, f"{script.name} not found"
    samples: dict[str, list[float]] = {}
    for _ in range(1 if bench.repeats_inside else runs):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, str(script), *bench.argv(runs), "--json", out.name]
            if bench.postgres:
                try:
                    cmd += ["--database-url", pg.database_url()]
                except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                    return {}, str(exc).splitlines()[0]
            print("$", " ".join(cmd[1:]), flush=True)
            try:
                done = subprocess.run(cmd, cwd=ROOT, timeout=bench.timeout_s)
            except subprocess.TimeoutExpired:
                return {}, f"timed out after {bench.timeout_s:.0f} s"
            if done.returncode != 0:
                return {}, f"exited with status {done.returncode}"
            for key, value in flatten(json.loads(Path(out.name).read_text() or "{}"), bench.name).items():
                samples.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in samples.items()}, ""


def fmt(value: float, unit: str) -> str:
    if value >= 100 or (value >= 10 and unit == "ns"):
        text = f"{value:,.0f}"
    elif value >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}"


def verdict(fig: Figure, value: float, peer: float | None) -> tuple[str, str]:
    """(target text, met text)."""
    if fig.target is None:
        return "", ""
    op, bound = fig.target
    if fig.on_ratio:
        if peer is None or value == 0:
            return f"{op} {bound:g}x", "no peer"
        if op == ">=":
            ratio, text = peer / value, f"≥ {bound:g}x faster than the peer"
        else:
            ratio, text = value / peer, f"{op.replace('<=', '≤')} {bound:g}x the peer"
    else:
        ratio, text = value, f"{op.replace('<=', '≤').replace('>=', '≥')} {bound:g} {fig.unit}"
    met = {"<": ratio < bound, "<=": ratio <= bound, ">=": ratio >= bound}[op]
    return text, "yes" if met else "**no**"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB; Linux {platform.release()}; "
            f"Python {platform.python_version()}; commit {commit or 'unknown'}")


def render(results: dict[str, float], failures: dict[str, str], runs: int, took_s: float,
           measured: dict[str, str]) -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` (bench/report.py) on {datetime.date.today().isoformat()}; "
        f"its last invocation took {took_s / 60:.1f} min (see 'Measured on' for which benchmarks it ran).",
        f"Machine: {machine()}.",
        f"Every figure is a median of {runs} runs; peers were measured in the same run unless quoted. "
        "The machine is shared and noisy: the ratios are steadier than the absolutes.",
        "Measured on: " + ", ".join(f"{name} {day}" for name, day in sorted(measured.items())) + ".",
        "",
    ]
    section = None
    for fig in FIGURES:
        if fig.section != section:
            section = fig.section
            lines += ["", f"## {section}", "",
                      "| measure | Bulwark | peer (same run) | ratio | target | met |",
                      "|---|---|---|---|---|---|"]
        value = results.get(fig.key)
        if value is None:
            reason = failures.get(fig.key.split(".", 1)[0], "not measured")
            lines.append(f"| {fig.label} | — ({reason}) | {fig.peer_quote} | | "
                         f"{verdict(fig, 1.0, 1.0)[0]} | not measured |")
            continue
        peer = results.get(fig.peer_key) if fig.peer_key else None
        peer_text = f"{fig.peer_label}: {fmt(peer, fig.unit)}" if peer is not None else ""
        if fig.peer_quote:
            peer_text = "; ".join(x for x in (peer_text, fig.peer_quote) if x)
        ratio = "" if not peer or not value else \
            f"{value / peer:.2f}x slower" if value >= peer else f"{peer / value:.1f}x faster"
        target, met = verdict(fig, value, peer)
        lines.append(f"| {fig.label} | {fmt(value, fig.unit)} | {peer_text} | {ratio} | {target} | {met} |")
    lines += ["", "## Raw medians", "", "```", *(f"{k} = {v:.6g}" for k, v in sorted(results.items())), "```", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", help="comma-separated bench names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "REPORT.md")
    args = ap.parse_args()
    wanted = set(args.only.split(",")) if args.only else {b.name for b in BENCHES}
    unknown = wanted - {b.name for b in BENCHES}
    if unknown:
        ap.error(f"unknown bench {', '.join(sorted(unknown))}; known: {', '.join(b.name for b in BENCHES)}")
    start = time.monotonic()
    kept_path = args.out.with_suffix(".json")
    kept = json.loads(kept_path.read_text()) if kept_path.exists() else {"results": {}, "measured": {}}
    results: dict[str, float] = {}
    failures: dict[str, str] = {}
    measured: dict[str, str] = {}
    pg = Postgres()
    try:
        for bench in BENCHES:
            if bench.name not in wanted:
                old = {k: v for k, v in kept["results"].items() if k.split(".", 1)[0] == bench.name}
                if old:
                    results.update(old)
                    measured[bench.name] = kept["measured"].get(bench.name, "earlier")
                else:
                    failures[bench.name] = "not run"
                continue
            medians, error = run_bench(bench, args.runs, pg)
            results.update(medians)
            if error:
                failures[bench.name] = error
                print(f"{bench.name}: {error}", file=sys.stderr)
            else:
                measured[bench.name] = datetime.date.today().isoformat()
    finally:
        pg.stop()
    kept_path.write_text(json.dumps({"results": results, "measured": measured}, indent=1, sort_keys=True))
    args.out.write_text(render(results, failures, args.runs, time.monotonic() - start, measured))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 1 if failures and not args.only else 0


if __name__ == "__main__":
    sys.exit(main())
