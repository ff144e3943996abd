"""Parsing list imports: a streamed body of text or CSV lines into the entries it names.

Invariants:
- One judge of a line (`parse_row`): every line is checked, the first MAX_REPORTED_ERRORS
  bad ones are reported by number, and a body with any bad line imports nothing.
- The result is `Wanted`, canonical network -> Entry, or None for the plain case (no expiry,
  no comment); the first line naming a network fixes its place, the last its value.
- The body is read a chunk at a time and parsed in a worker thread (8 MiB of garbage once
  took 1.5 GB): neither the event loop nor memory carries the whole body.

A text block whose lines are all bare IPv4 hosts (the bulk of big imports) is judged in
one C-level pass (`inet_pton` over the block, strict: such a line is already canonical);
any other block goes line by line. Both give the same result for the same lines
(tests/hub/test_list_import_fast.py).
"""
from __future__ import annotations

import asyncio
import codecs
import csv
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from hub.api_schemas.common import MAX_INT
from hub.errors import InvalidInput, PayloadTooLarge
from rules_dsl import addresses


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    network: str
    expires_at: int | None = None
    comment: str = ""


Wanted = dict[str, "Entry | None"]  # canonical network -> Entry, None: Entry(network)

MAX_LINE_CHARS = 128 * 1024
MAX_REPORTED_ERRORS = 1000
MAX_ERROR_CHARS = 300
_PIECE = 1 << 20


def parse_network(text: str) -> str:
    """Canonical form of an address or prefix (see rules_dsl.addresses: a bare host for
    /32 and /128). Raises ValueError with a reason."""
    return addresses.canonical(text)


def parse_expiry(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        # Bounded before int(): the column is a signed 64-bit integer.
        if len(text) > 19 or int(text) > MAX_INT:
            raise ValueError(f"an expiry may be at most {MAX_INT} (unix seconds)")
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601 or unix seconds)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp())


def parse_row(fields: tuple[str, ...] | list[str]) -> Entry:
    """One import line's fields (network[, expires_at[, comment]]) as an Entry; raises
    ValueError with the reason. The one place a line is judged."""
    if len(fields) > 3:
        raise ValueError("more than 3 fields (network,expires_at,comment)")
    network_text, expiry_text, comment = (*fields, "", "")[:3]
    network = parse_network(network_text)
    expires = parse_expiry(expiry_text) if expiry_text else None
    if len(comment) > 200:
        raise ValueError("comment longer than 200 characters")
    return Entry(network, expires, comment.strip()) if comment else Entry(network, expires)


def _text_fields(line: str) -> tuple[str, ...]:
    """`network [# comment]` as (network,) or (network, "", comment)."""
    network, hashed, comment = line.partition("#")
    return (network, "", comment.strip()) if hashed else (network,)


def body_blocks(chunks: Iterable[bytes], max_bytes: int) -> Iterator[list[str]]:
    """The lines (ends dropped) of a UTF-8 body arriving in chunks, a block per piece of
    a chunk, holding at most a piece and one line; an over-long line, bad UTF-8 or NUL
    end it with a 4xx."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry, total, line_no = "", 0, 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"the body may have at most {max_bytes} bytes")
        for i in range(0, len(chunk), _PIECE):
            try:
                text = decoder.decode(chunk[i:i + _PIECE])
            except UnicodeDecodeError:
                raise InvalidInput(f"line {line_no + 1}: the body must be UTF-8 text") from None
            if "\x00" in text:
                raise InvalidInput("the body may not contain NUL characters")
            *done, carry = (carry + text).split("\n")
            if done:
                if max(map(len, done)) > MAX_LINE_CHARS:
                    raise _too_long(line_no + next(n for n, line in enumerate(done, 1) if len(line) > MAX_LINE_CHARS))
                line_no += len(done)
                yield done
            if len(carry) > MAX_LINE_CHARS:
                raise _too_long(line_no + 1)
    try:
        carry += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidInput(f"line {line_no + 1}: the body must be UTF-8 text") from None
    if carry:
        yield [carry]


def _too_long(line_no: int) -> InvalidInput:
    return InvalidInput(f"line {line_no} is longer than {MAX_LINE_CHARS} characters; nothing was imported",
                        details=[{"line": line_no, "error": "line too long"}])


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) for each CSV record."""
    reader = csv.reader(lines)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"line {reader.line_num}: {exc}; nothing was imported",
                               details=[{"line": reader.line_num, "error": str(exc)}]) from None
        yield start, row
        start = reader.line_num + 1


def _v4_hosts(block: list[str]) -> list[str] | None:
    """The block's lines stripped when every one is a bare IPv4 host, else None."""
    stripped = list(map(str.strip, block))
    return stripped if addresses.all_v4_hosts(stripped) else None


class _Parse:
    """Lines judged one at a time or a block at a time into `wanted`, errors kept."""

    def __init__(self, max_entries: int | None) -> None:
        self.wanted: Wanted = {}
        self.errors: list[dict[str, Any]] = []
        self.bad = 0
        self.max_entries = max_entries

    def row(self, n: int, fields: tuple[str, ...] | list[str]) -> None:
        if not fields or not fields[0].strip() or fields[0].lstrip().startswith("#"):
            return
        try:
            entry = parse_row(fields)
        except ValueError as exc:
            self.bad += 1
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append({"line": n, "error": str(exc)[:MAX_ERROR_CHARS]})
            return
        self.wanted[entry.network] = None if entry.expires_at is None and not entry.comment else entry
        if self.max_entries is not None and len(self.wanted) > self.max_entries:
            raise InvalidInput(f"a list holds at most {self.max_entries} entries (line {n} is past that)")

    def text_block(self, first: int, block: list[str]) -> None:
        room = self.max_entries is None or len(self.wanted) + len(block) <= self.max_entries
        hosts = _v4_hosts(block) if room else None
        if hosts is not None:
            self.wanted.update(dict.fromkeys(hosts))
            return
        for n, line in enumerate(block, start=first):
            self.row(n, _text_fields(line.rstrip("\r\n")))

    def result(self) -> Wanted:
        if self.bad:
            more = f" (the first {len(self.errors)} are listed)" if self.bad > len(self.errors) else ""
            raise InvalidInput(f"{self.bad} bad line(s){more}; nothing was imported", details=self.errors)
        return self.wanted


def parse_blocks(blocks: Iterable[list[str]], fmt: str, max_entries: int | None = None) -> Wanted:
    """Entries from blocks of text (`network [# comment]` a line) or CSV
    (`network,expires_at,comment`) lines.

    Raises InvalidInput with the first MAX_REPORTED_ERRORS bad lines by number (the rest
    are only counted); blank and `#` lines are skipped. Past `max_entries` distinct
    networks it stops: no list could hold them."""
    parse = _Parse(max_entries)
    if fmt == "text":
        n = 1
        for block in blocks:
            parse.text_block(n, block)
            n += len(block)
    elif fmt == "csv":
        lines = (line + "\n" for block in blocks for line in block)
        for n, row in _csv_rows(lines):
            parse.row(n, row)
    else:
        raise InvalidInput("format must be text or csv")
    return parse.result()


def entries_of(wanted: Wanted) -> list[Entry]:
    return [entry or Entry(network) for network, entry in wanted.items()]


def parse_lines(lines: Iterable[str], fmt: str, max_entries: int | None = None) -> list[Entry]:
    """`parse_blocks` over lines (ends kept or not), as Entries."""
    return entries_of(parse_blocks([[line.removesuffix("\n") for line in lines]], fmt, max_entries))


async def parse_body(body: AsyncIterator[bytes], fmt: str, max_bytes: int,
                     max_entries: int | None = None) -> Wanted:
    """Parse a request body in a worker thread that pulls its chunks from the event loop
    one at a time, so neither the loop nor memory carries the whole import."""
    loop = asyncio.get_running_loop()

    async def next_chunk() -> bytes | None:
        try:
            return await body.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        while (chunk := asyncio.run_coroutine_threadsafe(next_chunk(), loop).result()) is not None:
            yield chunk

    return await asyncio.to_thread(parse_blocks, body_blocks(chunks(), max_bytes), fmt, max_entries)
