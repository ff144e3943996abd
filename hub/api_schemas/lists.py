"""IP lists: entries, imports, revisions and the changes since a revision."""
from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, RootModel

from hub.api_schemas.common import MAX_INT, Strict
from hub.services.list_browse import MAX_SEARCH
from hub.services.lists import KINDS

Kind = Literal[KINDS]  # type: ignore[valid-type]


class ListIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind


class EntryIn(Strict):
    network: str = Field(max_length=64, description="an IPv4/IPv6 address or prefix (host bits clear)")
    expires_at: int | None = Field(default=None, ge=0, le=MAX_INT, description="unix seconds")
    comment: str = Field(default="", max_length=200)


class ChangeIn(Strict):
    add: list[EntryIn] = Field(default_factory=list, max_length=10000)
    remove: list[str] = Field(default_factory=list, max_length=10000)


class ImportQuery(Strict):
    format: Literal["text", "csv"] = "text"
    replace: bool = Field(default=False, description="the import becomes the whole list")


class PageQuery(Strict):
    offset: int = Field(default=0, ge=0, le=MAX_INT)
    limit: int = Field(default=1000, ge=1, le=10000)
    q: str = Field(default="", max_length=MAX_SEARCH,
                   description="only entries whose network starts with this (e.g. `10.1.` or `2001:db8:`)")


class ExportQuery(Strict):
    q: str = Field(default="", max_length=MAX_SEARCH, description="as in the entries' search")


class SinceQuery(Strict):
    since: int | None = Field(default=None, ge=0, le=MAX_INT, description="the revision the caller holds")


class ListOut(Strict):
    id: uuid.UUID
    name: str
    kind: Kind
    revision: int


class ListDetail(ListOut):
    entries: int = Field(description="how many entries the list holds")


class ListsOut(Strict):
    lists: list[ListOut]


class EntryOut(Strict):
    network: str
    expires_at: int | None
    comment: str


class EntriesOut(Strict):
    entries: list[EntryOut]
    revision: int
    total: int = Field(description="how many live entries match the search (all of them without one)")


class ChangeOut(Strict):
    revision: int = Field(description="the list's new revision")
    added: int
    removed: int
    entries: int = Field(description="how many entries the list now holds")


class TimedEntry(Strict):
    network: str
    expires_at: int


# An entry in a snapshot or delta: the bare network, or with its expiry.
Entry = str | TimedEntry


class Current(ListOut):
    mode: Literal["current"]


class Snapshot(ListOut):
    mode: Literal["snapshot"]
    entries: list[Entry]


class Delta(ListOut):
    mode: Literal["delta"]
    since: int
    added: list[Entry]
    removed: list[str]


class ListUpdate(RootModel[Annotated[Current | Snapshot | Delta, Field(discriminator="mode")]]):
    """What a holder of revision `since` needs: nothing new, the changes, or everything."""
