"""Run every benchmark under bench/ and write bench/REPORT.md: each figure beside its
peer from the same run, the target from its issue, and whether it is met.

    .venv/bin/python bench/report.py [--runs 5] [--only guard,dsl] [--out bench/REPORT.md]
    .venv/bin/python bench/report.py --render [--merge OTHER.json ...]

The medians are kept beside the report (REPORT.json, one entry per bench with its date,
commit and load average: bench/report_store.py); with --only, the benches not run keep
their figures from there, and each row says which run it is from. --render runs nothing:
it re-renders REPORT.md from REPORT.json, after taking in (--merge) the newer entries of
other REPORT.json files, e.g. another branch's (`git show BRANCH:bench/REPORT.json`).
The rows, targets and areas are in bench/report_render.py.

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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import report_render
import report_store

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
    # its peer: the same agents asking one request a change (before the streamed form)
    Bench("hub_longpoll_10k_pg2_longpoll", "hub_longpoll", lambda runs: ["--agents", "10000", "--rounds", str(runs),
                                                                       "--hub-processes", "2", "--long-poll"],
          True, 1800, postgres=True),
    Bench("lockout", "lockout", lambda runs: ["--repeat", str(max(21, runs))], True, 300),
    Bench("list_search", "list_search", lambda runs: ["--rounds", str(runs)], True, 900),
]


def flatten(doc: dict, prefix: str) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else key
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


CLEANUP_S = 60  # what a timed-out bench gets to remove its namespaces, pins and processes


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run_group(cmd: list[str], timeout_s: float) -> int | None:
    """Run a bench in a process group of its own; its exit status, or None when it timed
    out. A timed-out group is interrupted first (SIGINT: the benches' `finally` blocks
    remove the namespaces and pins they made), then whatever is left is killed (a hub it
    started would otherwise outlive it)."""
    child = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        return child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=CLEANUP_S)
        except subprocess.TimeoutExpired:
            pass
        return None
    finally:
        _signal_group(child.pid, signal.SIGKILL)  # whatever of the group is left, if anything
        child.wait()


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
            returncode = run_group(cmd, bench.timeout_s)
            if returncode is None:
                return {}, f"timed out after {bench.timeout_s:.0f} s"
            if returncode != 0:
                return {}, f"exited with status {returncode}"
            for key, value in flatten(json.loads(Path(out.name).read_text() or "{}"), "").items():
                samples.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in samples.items()}, ""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB; Linux {platform.release()}; "
            f"Python {platform.python_version()}")


def commit() -> str:
    """HEAD, with "-dirty" when the work tree has uncommitted changes (the figures may be
    of code no commit holds); the report's own files do not count."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                         ":!bench/REPORT.json", ":!bench/REPORT.md") else "")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def run_all(wanted: set[str], runs: int, store: report_store.Store, kept_path: Path) -> list[str]:
    """Run the wanted benches, recording each in store (and on disk, so an interrupted
    run keeps what it measured). The names of those that failed."""
    failed = []
    pg = Postgres()
    try:
        for bench in (b for b in BENCHES if b.name in wanted):
            meta = {"date": now(), "commit": commit(), "machine": machine(), "runs": runs}
            load0, start = os.getloadavg()[0], time.monotonic()
            medians, error = run_bench(bench, runs, pg)
            meta.update(took_s=round(time.monotonic() - start, 1), load_average=[round(load0, 2), round(os.getloadavg()[0], 2)])
            report_store.record(store, bench.name, medians, error, meta)
            report_store.dump(store, kept_path)
            if error:
                failed.append(bench.name)
                print(f"{bench.name}: {error}", file=sys.stderr)
    finally:
        pg.stop()
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", help="comma-separated bench names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "REPORT.md")
    ap.add_argument("--render", action="store_true", help="run nothing: re-render from REPORT.json")
    ap.add_argument("--merge", type=Path, nargs="+", default=[], metavar="JSON",
                    help="take in the newer entries of these REPORT.json files first")
    args = ap.parse_args()
    names = [b.name for b in BENCHES]
    wanted = set(args.only.split(",")) if args.only else set(names)
    if unknown := wanted - set(names):
        ap.error(f"unknown bench {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    if args.render and args.only:
        ap.error("--render runs nothing; --only chooses what to run")
    kept_path = args.out.with_suffix(".json")
    try:
        store = report_store.load(kept_path)
        for other in args.merge:
            store = report_store.merge(store, report_store.load(other))
    except report_store.StoreError as exc:
        ap.error(str(exc))
    failed = [] if args.render else run_all(wanted, args.runs, store, kept_path)
    report_store.dump(store, kept_path)
    args.out.write_text(report_render.render(store, names, now().replace("T", " ")))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


report_render.check_covers([b.name for b in BENCHES])

if __name__ == "__main__":
    sys.exit(main())


