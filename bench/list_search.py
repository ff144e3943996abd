"""Benchmark: the list page's search and paging over a 1,000,000-entry list (SQLite), as
`hub.services.list_browse` runs them, beside the query the panel ran before (a LIKE
'prefix%' filter, which SQLite answers by scanning the list's rows), same data, same run.

    .venv/bin/python bench/list_search.py [--entries 1000000] [--rounds 5] [--json FILE]

Prints medians (ms) of `rounds`; the machine is shared and noisy: compare the columns.
--json writes them as `<search>_ms` (list_browse) and `<search>_like_ms` (the LIKE).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.config import HubConfig  # noqa: E402
from hub.db import migrate, open_db  # noqa: E402
from hub.models import IpEntry, IpList, Tenant  # noqa: E402
from hub.services import list_browse  # noqa: E402
from hub.services.lists import Entry, _insert  # noqa: E402

# name in --json -> what is typed in the search box
SEARCHES = {"host_prefix": "10.1.134.", "wide_prefix": "10.15.", "one_host": "10.9.9.9", "no_match": "2001:db8:"}


async def timed(rounds: int, work) -> float:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        await work()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


async def main(entries: int, rounds: int, json_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = await open_db(HubConfig(data_dir=tmp))
        try:  # closed on failure too: the open SQLite connection's thread would keep the process alive
            await migrate(ctx)
            tenant = await Tenant.create(name="bench")
            ip_list = await IpList.create(tenant=tenant, name="big", kind="deny", revision=1)
            from tortoise.transactions import in_transaction

            networks = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(entries))
            rows = [(n, Entry(n, None, f"bot {i}")) for i, n in enumerate(networks)]  # commented: full rows
            async with in_transaction() as conn:
                await _insert(conn, ip_list.id, 1, rows)

            async def old(search: str, offset: int = 0):
                qs = IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True)
                if search:
                    qs = qs.filter(network__startswith=search)
                await qs.count()
                await qs.order_by("id").offset(offset).limit(50).values("network", "expires_at", "comment")

            print(f"{entries:,} entries, median of {rounds} (ms)")
            print(f"{'query':<28}{'list_browse':>14}{'LIKE (before)':>16}")
            figures: dict[str, float] = {"entries": entries}
            for name, search in SEARCHES.items():
                new_ms = await timed(rounds, lambda: list_browse.page(ip_list, search, 0, 50))
                old_ms = await timed(rounds, lambda: old(search))
                found = (await list_browse.page(ip_list, search, 0, 50)).total
                figures.update({f"{name}_ms": new_ms, f"{name}_like_ms": old_ms, f"{name}_found": found})
                print(f"{f'q={search} ({found:,})':<28}{new_ms:>14.1f}{old_ms:>16.1f}")
            last = entries - 50
            new_ms = await timed(rounds, lambda: list_browse.page(ip_list, "", last, 50))
            old_ms = await timed(rounds, lambda: old("", last))
            figures.update({"last_page_ms": new_ms, "last_page_like_ms": old_ms})
            print(f"{'last page, no search':<28}{new_ms:>14.1f}{old_ms:>16.1f}")
        finally:
            await ctx.close_connections()
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=1, sort_keys=True))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default="")
    args = p.parse_args()
    asyncio.run(main(args.entries, args.rounds, args.json))
