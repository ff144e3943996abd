"""The policies the demo deploys: examples/web.bw as it stands (v1; its `pass tcp flags
ack/ack` passes the hub's replies, so the lockout guard accepts it), then a version that
also drops reflected answers (v2).

- web.bw passes every UDP packet from port 53, because a web server resolves names; DNS
  reflection rides on exactly that. v2 drops answers from ports 53 and 123 larger than a
  plain DNS answer (512 bytes), ahead of that pass.
Two versions also give the end-to-end test something to roll back.
"""
from __future__ import annotations

from pathlib import Path

WEB_BW = Path(__file__).resolve().parents[1] / "examples" / "web.bw"
DENY_LIST = "crowdsec-ban"  # the hub list web.bw's blocklist set names
REFLECTION_RULE = "drop udp sport { 53, 123 } length > 512"
_DNS_PASS = "pass udp sport 53\n"


def _insert_before(text: str, anchor: str, line: str) -> str:
    if text.count(anchor) != 1:
        raise ValueError(f"{WEB_BW.name} no longer has exactly one line {anchor.strip()!r}: revisit demo/policy.py")
    return text.replace(anchor, f"{line}\n{anchor}")


def web_policy() -> str:
    """v1: web.bw."""
    return WEB_BW.read_text()


def hardened_policy() -> str:
    """v2: v1 plus REFLECTION_RULE before web.bw's `pass udp sport 53`."""
    return _insert_before(web_policy(), _DNS_PASS, REFLECTION_RULE)
