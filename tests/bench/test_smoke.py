"""Every benchmark bench/report.py runs, at a size that takes seconds: it exits 0 and its
--json holds every figure bench/report_render.py shows for it (so a renamed key fails
too). A bench broken by a change elsewhere fails here, not at the next report run: e2e_scale
signed in without the second factor for days after 2FA became required, and nothing noticed.

The sizes prove the scripts work, not how fast anything is: no figure is asserted.
"""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402
import report_render  # noqa: E402

# bench script -> arguments that make it quick (each takes a few seconds to ~40 s here).
SMALL = {
    "dsl": [],  # fixed sizes, ~3 s
    "guard": ["--runs", "1", "--repeat", "1000"],  # its 1M-entry loads are fixed: ~40 s
    "agent": ["--entries", "10000", "--idle-s", "1", "--repeat", "1"],
    "hub_longpoll": ["--agents", "20", "--rounds", "1"],
    "hub_metrics": ["--agents", "20", "--rate", "50", "--seconds", "1", "--rounds", "1"],
    "panel": ["--agents", "5", "--requests", "10", "--rounds", "1"],
    "hub_lists": ["--entries", "2000", "--rounds", "1"],
    "e2e_scale": ["--entries", "2000", "--changes", "2", "--small-changes", "1", "--idle-s", "1"],
    "lockout": ["--entries", "10000", "--repeat", "3"],
    "list_search": ["--entries", "2000", "--rounds", "1"],
}
NEEDS_KERNEL = {"guard", "agent", "e2e_scale"}  # namespaces, XDP, pins: root
TAKES_PORT = {"agent", "hub_longpoll", "hub_metrics", "panel", "hub_lists"}  # defaults may be taken by a real run
TIMEOUT_S = 240  # a guard against a hang, not a timing


def shown_keys(bench: str) -> set[str]:
    """The figures of `bench` (flattened, as report.py stores them) that REPORT.md has rows for."""
    keys = {k for f in report_render.FIGURES for k in (f.key, f.peer_key) if k and k.split(".", 1)[0] == bench}
    return {k.split(".", 1)[1] for k in keys}


def free_ports(count: int) -> int:
    """A port p with p .. p+count-1 all free now (a bench with --hub-processes N takes N)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for p in range(port + 1, port + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


def run_bench(script: str, args: list[str], tmp_path: Path, monkeypatch) -> dict[str, float]:
    """Run the script as report.py does (its own process group, killed on timeout) and
    return its flattened figures; fails on a non-zero exit or a timeout."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    out = tmp_path / f"{script}.json"
    cmd = [sys.executable, str(ROOT / "bench" / f"{script}.py"), *args, "--json", str(out)]
    status = report.run_group(cmd, TIMEOUT_S)
    assert status is not None, f"{script} did not finish within {TIMEOUT_S} s"
    assert status == 0, f"{script} exited with status {status} (its output is above)"
    return report.flatten(json.loads(out.read_text()), "")


def test_every_bench_report_runs_has_a_smoke_size():
    assert {b.script for b in report.BENCHES} == SMALL.keys()


SQLITE_BENCHES = [b for b in report.BENCHES if not b.postgres]


@pytest.mark.parametrize("bench", [
    pytest.param(b, id=b.name, marks=[pytest.mark.kernel] if b.script in NEEDS_KERNEL else [])
    for b in SQLITE_BENCHES
])
def test_bench_runs_and_writes_the_figures_the_report_shows(bench, tmp_path, monkeypatch):
    args = SMALL[bench.script]
    if bench.script in TAKES_PORT:
        args = [*args, "--port", str(free_ports(1))]
    figures = run_bench(bench.script, args, tmp_path, monkeypatch)
    assert shown_keys(bench.name) <= figures.keys()


def test_hub_longpoll_on_postgres_with_two_hub_processes(postgres_server, tmp_path, monkeypatch):
    args = [*SMALL["hub_longpoll"], "--hub-processes", "2", "--port", str(free_ports(2)),
            "--database-url", postgres_server.new_database()]
    figures = run_bench("hub_longpoll", args, tmp_path, monkeypatch)
    assert shown_keys("hub_longpoll_pg2") <= figures.keys()
