"""JSON as the hub reads it: nesting bounded before parsing.

Why: `json.loads` recurses per level, so a body nested 1,000 deep raised RecursionError
(a 500) on every route, before authentication. The one `loads` here is the app's JSON
provider (`install`, so Quart's `get_json` and quart-schema use it) and what
the agent fast path and `read_json` call; too deep is a ValueError like any bad JSON, so
both answer 400.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any

from quart import Quart

MAX_DEPTH = 32
_STRINGS = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeep(ValueError):
    pass


def depth(text: str) -> int:
    """How deep the brackets of `text` nest, outside strings (a scan, no recursion)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads`, refusing nesting beyond MAX_DEPTH. Raises ValueError (TooDeep)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()
    # A text cannot nest deeper than it opens brackets (strings only add to the count):
    # two C-speed counts spare most bodies (a metrics batch: ~23) the scan, ~30 µs of regex.
    if text.count("[") + text.count("{") > MAX_DEPTH and depth(text) > MAX_DEPTH:
        raise TooDeep(f"JSON may nest at most {MAX_DEPTH} levels deep")
    return json.loads(text, **kwargs)


def install(app: Quart) -> None:
    """Make the app's JSON provider (quart-schema's, which only changes dumping) parse
    with `loads`; Quart's `get_json` calls `app.json.loads`."""
    app.json.loads = loads  # type: ignore[method-assign]
