"""bench/report.py's store and rendering: REPORT.json merges per bench, re-renders without
running anything, and every bench is shown with its date and its targets' verdicts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
import report_render  # noqa: E402
import report_store  # noqa: E402

NAMES = [b.name for b in report.BENCHES]


def entry(date: str, **figures: float) -> dict:
    return {"date": date, "commit": "abc1234", "figures": figures, "load_average": [5.0, 6.0], "runs": 5}


def test_every_bench_has_a_row_and_a_bench_without_one_is_refused():
    report_render.check_covers(NAMES)
    with pytest.raises(ValueError, match="no row for newbench"):
        report_render.check_covers([*NAMES, "newbench"])


def test_the_layout_before_one_entry_per_bench_is_read(tmp_path):
    old = tmp_path / "REPORT.json"
    old.write_text(json.dumps({"measured": {"guard": "2026-11-23"},
                               "results": {"guard.nft_load_1m_s": 2.4, "dsl.rules_1000_s": 0.6}}))
    store = report_store.load(old)
    assert store == {"guard": {"date": "2026-11-23", "commit": "unknown", "figures": {"nft_load_1m_s": 2.4}}}


@pytest.mark.parametrize("text, error", [
    ("{", "not JSON"), ("[]", "not an object"), ('{"guard": 3}', "neither figures"),
    ('{"guard": {"date": "x", "figures": {"a": "fast"}}}', "not a number"),
    ('{"guard": {"date": "x", "figures": {"a": true}}}', "not a number"),
    ('{"results": [], "measured": {}}', "must be objects"),
])
def test_a_broken_store_is_a_located_error(tmp_path, text, error):
    path = tmp_path / "REPORT.json"
    path.write_text(text)
    with pytest.raises(report_store.StoreError, match=error) as info:
        report_store.load(path)
    assert str(path) in str(info.value)


def test_merge_takes_each_bench_measured_last():
    ours = {"guard": entry("2026-12-02T05:00Z", a=1), "dsl": entry("2026-12-02T05:10Z", b=1)}
    theirs = {"guard": entry("2026-11-23", a=9), "dsl": entry("2026-12-02T06:00Z", b=2),
              "panel": entry("2026-12-01T10:00Z", c=3)}
    merged = report_store.merge(ours, theirs)
    assert [merged[n]["figures"] for n in ("dsl", "guard", "panel")] == [{"b": 2}, {"a": 1}, {"c": 3}]
    assert list(merged) == sorted(merged)


def test_an_old_layout_run_of_the_same_day_is_taken_over_ours():
    """Another branch's old report.py re-ran the bench today, after that branch's changes."""
    merged = report_store.merge({"panel": entry("2026-12-02T05:00Z", c=1)},
                                {"panel": entry("2026-12-02", c=2), "dsl": entry("2026-11-23", b=1)})
    assert merged["panel"]["figures"] == {"c": 2}
    assert report_store.merge({"dsl": entry("2026-11-23T05:00Z", b=9)}, {"dsl": entry("2026-11-22", b=1)}) \
        == {"dsl": entry("2026-11-23T05:00Z", b=9)}


def test_a_failed_rerun_keeps_the_last_figures_beside_the_failure():
    store = {"guard": entry("2026-11-23", one_entry_change_ms=0.03)}
    report_store.record(store, "guard", {}, "exited with status 1", {"date": "2026-12-02T05:00Z", "commit": "x"})
    assert store["guard"]["figures"] == {"one_entry_change_ms": 0.03}
    assert store["guard"]["failed"]["error"] == "exited with status 1"
    text = report_render.render(store, NAMES, "now")
    assert "**failed** 2026-12-02 05:00Z: exited with status 1" in text
    assert "re-run 2026-12-02 failed" in text
    # a later good run clears the note
    report_store.record(store, "guard", {"nft_load_1m_s": 2.0}, "", {"date": "2026-12-02T06:00Z", "commit": "y"})
    assert "failed" not in store["guard"]


def test_rows_say_their_run_and_misses_are_listed():
    store = {"lockout": entry("2026-11-23T01:00Z", median_ms=7.5, p90_ms=8, worst_ms=9),
             "guard": entry("2026-12-02T05:00Z", guard_load_1m_packed_s=0.07, nft_load_1m_s=2.8)}
    text = report_render.render(store, NAMES, "now")
    lockout = next(line for line in text.splitlines() if line.startswith("| lockout guard on a hub Plan"))
    assert "7.50 ms" in lockout and "≤ 5 ms (issue 11)" in lockout and "**no**" in lockout
    assert "2026-11-23 01:00Z, abc1234" in lockout
    packed = next(line for line in text.splitlines() if line.startswith("| load a new 1,000,000-entry snapshot"))
    assert "40.0x faster" in packed and "| yes |" in packed
    assert "- Agent: lockout guard on a hub Plan, 1M-entry hub-shaped list, median: 7.50 ms" in text
    for area in report_render.AREAS:
        assert f"\n## {area}\n" in text
    assert "| panel | never |" in text  # a bench never run is listed, and its rows say so
    assert "— (not run)" in text


def test_render_runs_nothing_and_merges_another_branch(tmp_path):
    ours, theirs = tmp_path / "REPORT.json", tmp_path / "theirs.json"
    report_store.dump({"dsl": entry("2026-12-02T05:00Z", rules_1000_s=0.5, nft_check_1000_s=0.05)}, ours)
    theirs.write_text(json.dumps({"measured": {"panel": "2026-12-02"},
                                  "results": {"panel.dashboard_p95_ms": 80.0, "panel.healthz_p95_ms": 2.0}}))
    done = subprocess.run([sys.executable, str(BENCH / "report.py"), "--render", "--merge", str(theirs),
                           "--out", str(tmp_path / "REPORT.md")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(ours.read_text())) == {"dsl", "panel"}
    text = (tmp_path / "REPORT.md").read_text()
    assert "| dashboard with 100 agents, server-side render p95 (SQLite) | 80.00 ms" in text
    assert "| dsl | 2026-12-02 05:00Z, abc1234 | 5.00 → 6.00 |" in text


def test_render_refuses_a_broken_merge_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = subprocess.run([sys.executable, str(BENCH / "report.py"), "--render", "--merge", str(bad),
                           "--out", str(tmp_path / "REPORT.md")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "bad.json: not JSON" in done.stderr
    assert not (tmp_path / "REPORT.md").exists()


def test_a_bench_that_times_out_takes_what_it_started_with_it(tmp_path):
    pid_file = tmp_path / "hub.pid"
    leaves_a_hub = ("import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); "
                    f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    assert report.run_group([sys.executable, "-c", leaves_a_hub], 3) is None
    stat = Path(f"/proc/{pid_file.read_text()}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or dead and unreaped
    assert report.run_group([sys.executable, "-c", "raise SystemExit(3)"], 10) == 3


def test_a_bench_that_times_out_gets_to_remove_what_it_made(tmp_path):
    """Interrupted before it is killed: its `finally` runs (there it removes its namespaces)."""
    cleaned = tmp_path / "cleaned"
    bench = f"import time\ntry:\n    time.sleep(60)\nfinally:\n    open({str(cleaned)!r}, 'w').write('yes')\n"
    assert report.run_group([sys.executable, "-c", bench], 2) is None
    assert cleaned.read_text() == "yes"
