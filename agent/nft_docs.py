"""libnftables documents the agent derives from a Plan's table. Pure.

`both_tables(old, new)` is the table for switching the XDP part and the stateful part
together. There is no transaction across the two, so the switch goes

    table := both(old, new)   XDP: old   passes only what old XDP, old and new table pass
    XDP flip                  XDP: new   passes only what new XDP, old and new table pass
    table := new

and at no moment passes a packet that both the old and the new Plan would drop (each
step is at least as strict as the old Plan or the new one). `both` holds the new table's
chains and the old table's, renamed (`…_was`), as separate base chains on the same hooks:
a packet must pass every base chain of a hook, so it must pass both tables. The old
table is read from the kernel (`from_listing`), so a restarted agent, or one whose table
was left by a crash halfway, switches the same way.
"""
from __future__ import annotations

from typing import Any

SUFFIX = "_was"


def both_tables(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One document replacing the table with one that drops what either document drops."""
    renamed = _renamed(old)
    kept = [c for c in renamed["nftables"] if _is_part(c)]
    return {**new, "nftables": [*new.get("nftables", []), *kept]}


def from_listing(listing: list[dict[str, Any]]) -> dict[str, Any]:
    """A document that re-creates a listed table (`nft.list`): handles and the sets'
    dynamic elements left out, counters from zero."""
    out = []
    for obj in listing:
        if "metainfo" in obj:
            continue
        if isinstance(obj.get("set"), dict):
            obj = {"set": {k: v for k, v in obj["set"].items() if k != "elem"}}
        out.append({"add": _fresh(obj)})
    return {"nftables": out}


def _fresh(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_fresh(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    return {k: None if k == "counter" else _fresh(v) for k, v in obj.items() if k != "handle"}


def _is_part(cmd: dict[str, Any]) -> bool:
    add = cmd.get("add", {})
    return any(k in add for k in ("chain", "set", "rule"))


def _renamed(doc: Any) -> Any:
    """Chains and sets of doc renamed with SUFFIX, and every reference to them."""
    if isinstance(doc, list):
        return [_renamed(x) for x in doc]
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key, value in doc.items():
        if key in ("chain", "set") and isinstance(value, dict) and "name" in value:
            value = {**_renamed(value), "name": value["name"] + SUFFIX}
        elif key == "rule" and isinstance(value, dict):
            value = {**_renamed(value), "chain": value["chain"] + SUFFIX}
        elif key == "set" and isinstance(value, str) and value.startswith("@"):
            value = value + SUFFIX
        elif key in ("jump", "goto") and isinstance(value, dict) and "target" in value:
            value = {**value, "target": value["target"] + SUFFIX}
        else:
            value = _renamed(value)
        out[key] = value
    return out
