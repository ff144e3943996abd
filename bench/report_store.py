"""REPORT.json: what each benchmark measured last, one entry per bench, so that branches
which re-ran different benches merge without conflicts and the report can be re-rendered
from the merged file (`bench/report.py --render`, `--merge OTHER.json`).

    {
     "agent": {
      "commit": "b240f39",            # HEAD when it ran ("-dirty": uncommitted changes)
      "date": "2026-12-02",
      "figures": {"idle.median.idle_rss_mb": 46.5, ...},   # medians, one a line
      "load_average": [1.5, 0.3],     # 1-minute load average at its start and end
      "machine": "AMD EPYC ..., 2 cores, ...",
      "runs": 5,
      "took_s": 127.0
     },
     "guard": {..., "failed": {"date": ..., "commit": ..., "error": "exited with status 1"}},
     ...
    }

A bench whose latest attempt failed keeps the figures of its last good run beside a
`failed` note (the report shows both); one that never succeeded holds only the note.
Written with sorted keys, one value a line: two branches that re-ran different benches
touch different lines. The file before this layout (`{"results": {"bench.key": v},
"measured": {"bench": date}}`) is still read (commit unknown).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Store = dict[str, dict[str, Any]]


class StoreError(ValueError):
    """A REPORT.json that is neither layout; says which file and what is wrong."""


def load(path: Path) -> Store:
    """The entries of `path` (empty when it does not exist). Raises StoreError."""
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StoreError(f"{path}: not an object of benches")
    if set(doc) == {"results", "measured"}:
        return _from_flat(doc, path)
    for name, entry in doc.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("figures", {}), dict)
                and ("figures" in entry or "failed" in entry)):
            raise StoreError(f"{path}: bench {name!r} has neither figures nor a failure")
        bad = [k for k, v in entry.get("figures", {}).items() if not _number(v)]
        if bad:
            raise StoreError(f"{path}: bench {name!r}: {bad[0]!r} is not a number")
    return doc


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _from_flat(doc: dict, path: Path) -> Store:
    """The layout before one entry per bench: flat keys, a date per bench."""
    results, measured = doc["results"], doc["measured"]
    if not (isinstance(results, dict) and isinstance(measured, dict)):
        raise StoreError(f"{path}: 'results' and 'measured' must be objects")
    store: Store = {}
    for key, value in results.items():
        name, _, rest = key.partition(".")
        if rest and _number(value) and name in measured:
            store.setdefault(name, {"date": str(measured[name]), "commit": "unknown", "figures": {}})
            store[name]["figures"][rest] = value
    return store


def dump(store: Store, path: Path) -> None:
    path.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")


def record(store: Store, name: str, figures: dict[str, float], error: str, meta: dict[str, Any]) -> None:
    """Put a run of bench `name` into store: its figures, or its failure beside the
    figures of its last good run."""
    if error:
        store.setdefault(name, {})["failed"] = {"date": meta["date"], "commit": meta["commit"], "error": error}
    else:
        store[name] = {**meta, "figures": dict(sorted(figures.items()))}


def merge(ours: Store, theirs: Store) -> Store:
    """Per bench, the entry measured last (ours on a tie; see _when for dates without a
    time); a failure note survives only if it is not older than the figures kept."""
    out = dict(ours)
    for name, entry in theirs.items():
        mine = out.get(name)
        if mine is None or _when(entry) > _when(mine):
            out[name] = entry
    for name, entry in out.items():
        failed = entry.get("failed")
        if failed and "figures" in entry and failed["date"] < entry.get("date", ""):
            out[name] = {k: v for k, v in entry.items() if k != "failed"}
    return dict(sorted(out.items()))


def _when(entry: dict) -> str:
    """When an entry was last attempted (a success or a failure). A date without a time
    (the old layout) counts as the end of its day: a branch whose old report.py re-ran a
    bench today ran it after its own changes, which is the figure to keep."""
    def stamp(date: str) -> str:
        return date + "T24:00Z" if len(date) == 10 else date
    return max(stamp(entry.get("date", "")), stamp(entry.get("failed", {}).get("date", "")))
