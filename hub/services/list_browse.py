"""Reading a list as people do: a page of entries matching a search, and a CSV export.

Search is by address prefix ("10.1." or "2001:db8:"). On SQLite (code-point order) it is
a range on the indexed (ip_list_id, network) column, so a page over 1,000,000 entries reads
the index, not the table; on PostgreSQL it is a LIKE (a collation may not sort by code point).
The panel pages by key (`window`: first, next, previous, last, each a LIMIT on an index
range, never an OFFSET). The export streams in keyset batches (by id), so memory holds one batch.

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

from hub.errors import InvalidInput
from hub.models import IpEntry, IpList

MAX_SEARCH = 64
NETWORK_CHARS = 64  # IpEntry.network's length
EXPORT_BATCH = 5000
COUNT_CAP = 10_000  # a search's matches are counted up to this ("more than 10,000")
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
    many match in all: the API's paging (the panel's is `window`, by key)."""
    qs = _live(ip_list, search)
    total = await qs.count()
    rows = await qs.order_by("network" if search else "id").offset(offset).limit(limit) \
        .values("network", "expires_at", "comment") if offset < total else []
    return Page(rows, total, offset, limit)


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """A page of the panel's list, found by key, never by OFFSET: `first_key`/`last_key`
    are the keys its Previous/Next links carry; `total` is `total_at_least` when capped."""

    entries: list[dict[str, Any]]
    total: int
    capped: bool
    has_prev: bool
    has_next: bool
    first_key: str | None
    last_key: str | None


def key_field(search: str) -> str:
    """Entries are in address order when searched (the search is a range on it), else in
    the order they were added (by id)."""
    return "network" if search else "id"


def parse_key(search: str, raw: str | None) -> int | str | None:
    """A Previous/Next link's key, or None. Raises InvalidInput for one that cannot be a key."""
    if raw is None or raw == "":
        return None
    if search:
        return raw[:NETWORK_CHARS]
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidInput("the page key must be a whole number")
    return int(raw)


async def window(ip_list: IpList, search: str, *, after: int | str | None = None,
                 before: int | str | None = None, last: bool = False, limit: int = 50) -> Window:
    """The first page, the page after key `after`, the page before key `before`, or the
    last page (the key order descending, LIMIT, reversed): each one index range of at
    most `limit` + 1 rows, however deep into the list. A key past either end gives the
    last or first page."""
    qs, field = _live(ip_list, search), key_field(search)
    cols = ("id", "network", "expires_at", "comment")
    if after is not None:
        rows = await qs.filter(**{f"{field}__gt": after}).order_by(field).limit(limit + 1).values(*cols)
        if not rows:
            return await window(ip_list, search, last=True, limit=limit)
        has_prev, has_next = True, len(rows) > limit
        rows = rows[:limit]
    elif before is not None or last:
        desc = qs if before is None else qs.filter(**{f"{field}__lt": before})
        rows = await desc.order_by(f"-{field}").limit(limit + 1).values(*cols)
        if not rows and before is not None:
            return await window(ip_list, search, limit=limit)
        has_prev, has_next = len(rows) > limit, before is not None
        rows = rows[:limit][::-1]
    else:
        rows = await qs.order_by(field).limit(limit + 1).values(*cols)
        has_prev, has_next = False, len(rows) > limit
        rows = rows[:limit]
    total, capped = await _total(ip_list, search, qs)
    return Window(rows, total, capped, has_prev, has_next,
                  str(rows[0][field]) if rows else None, str(rows[-1][field]) if rows else None)


async def _total(ip_list: IpList, search: str, qs: QuerySet[IpEntry]) -> tuple[int, bool]:
    """The list's live count is kept on its row; a search counts its matches up to
    COUNT_CAP (a prefix like "1" could match most of a million entries)."""
    if not search:
        return ip_list.live_count, False
    found = len(await qs.limit(COUNT_CAP + 1).values_list("id", flat=True))
    return min(found, COUNT_CAP), found > COUNT_CAP


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
