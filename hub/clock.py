"""The hub's one clock: aware UTC datetimes, so every stored and compared time has a zone.
Services take `now` as an argument where tests need to move time; this is its default."""
from __future__ import annotations

import datetime as dt


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
