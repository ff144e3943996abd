"""Reading a list as people do: a page of entries matching a search, and a CSV export.

Search is by address prefix ("10.1." or "2001:db8:"). On SQLite (code-point order) it is
a range on the indexed (ip_list_id, network) column, so a page over 1,000,000 entries reads
the index, not the table; on PostgreSQL it is a LIKE (a collation may not sort by code point). The export streams in keyset batches (by id), so memory holds one batch.

CSV cells are for spreadsheets as much as for `bulwark` imports: a cell that starts with
= + - @, a tab or a carriage return would be run as a formula by Excel or LibreOffice
(CSV injection), so it is written with a leading apostrophe. Networks never start with one
of those; comments written by anyone with write access can.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import AsyncIterator
from typing import Any

from tortoise.queryset import QuerySet

from hub.models import IpEntry, IpList

MAX_SEARCH = 64
NETWORK_CHARS = 64  # IpEntry.network's length
EXPORT_BATCH = 5000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TOP = "\U0010ffff"  # above every character a network can hold: the prefix range's end


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    entries: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


def _live(ip_list: IpList, search: str) -> QuerySet[IpEntry]:
    qs = IpEntry.filter(ip_list_id=ip_list.id, removed_rev__isnull=True)
    if len(search) >= NETWORK_CHARS:  # nothing longer is stored: only the network itself starts so
        qs = qs.filter(network=search[:NETWORK_CHARS])
    elif search and IpEntry._meta.db.capabilities.dialect == "sqlite":
        qs = qs.filter(network__gte=search, network__lt=search + _TOP)
    elif search:
        # PostgreSQL compares text by the database's collation, which need not be code-point
        # order (en_US ignores dots at first), so a range could miss rows: LIKE is exact.
        qs = qs.filter(network__startswith=search)
    return qs


def clean_search(text: str | None) -> str:
    """Whitespace trimmed, lower case (IPv6 is stored so), at most MAX_SEARCH characters."""
    return (text or "").strip()[:MAX_SEARCH].lower()


async def page(ip_list: IpList, search: str, offset: int, limit: int) -> Page:
    """Live entries whose network starts with `search`, `limit` from `offset`, and how
    many match in all."""
    qs = _live(ip_list, search)
    total = await qs.count()
    rows = await qs.order_by("network" if search else "id").offset(offset).limit(limit) \
        .values("network", "expires_at", "comment") if offset < total else []
    return Page(rows, total, offset, limit)


async def numbered_page(ip_list: IpList, search: str, number: int, size: int) -> tuple[Page, int, int]:
    """(page, its number, how many pages): a number past the end shows the last page."""
    found = await page(ip_list, search, (number - 1) * size, size)
    pages = max(1, -(-found.total // size))
    if number > pages:
        number = pages
        found = await page(ip_list, search, (number - 1) * size, size)
    return found, number, pages


def safe_cell(value: Any) -> str:
    """`value` as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


async def export_csv(ip_list: IpList, search: str = "") -> AsyncIterator[bytes]:
    """`network,expires_at,comment` (the import's CSV form), a header line first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["network", "expires_at", "comment"])
    last = 0
    while True:
        rows = await _live(ip_list, search).filter(id__gt=last).order_by("id").limit(EXPORT_BATCH) \
            .values_list("id", "network", "expires_at", "comment")
        for _, network, expires_at, comment in rows:
            writer.writerow([safe_cell(network), "" if expires_at is None else expires_at, safe_cell(comment)])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < EXPORT_BATCH:
            return
        last = rows[-1][0]
