"""Small helpers shared by the rules_dsl tests."""
from __future__ import annotations

import ipaddress

import rules_dsl
from rules_dsl import Packet

HEADER = 'policy "t"\ndefault pass\n'


def diags(text: str, management=None):
    return list(rules_dsl.load(text, "t.bw", management).diagnostics)


def messages(text: str, severity: str = "error", management=None) -> list[str]:
    return [d.message for d in diags(text, management) if d.severity == severity]


def plan(text: str, management=None):
    return rules_dsl.compile(rules_dsl.parse(text, "t.bw"), management)


def tcp(src, dst, sport=40000, dport=80, flags=0x02, length=40, **kw) -> Packet:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    l3 = "ipv4" if s.version == 4 else "ipv6"
    return Packet(l3, s, d, 6, sport, dport, flags, length + (20 if l3 == "ipv6" else 0),
                  ttl=64, **kw)


def udp(src, dst, sport=40000, dport=53, length=28) -> Packet:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    l3 = "ipv4" if s.version == 4 else "ipv6"
    return Packet(l3, s, d, 17, sport, dport, None, length, ttl=64)
