"""Who is calling, by address: the client behind trusted proxies, and the key it is
throttled under.

Why: behind a reverse proxy every caller had the proxy's address (one throttle for all),
while trusting X-Forwarded-For from anyone lets a caller pick a fresh address per guess.
`X-Forwarded-For` is read only when the peer is in `trusted_proxies`, right to left,
skipping trusted hops; the first address that is not a trusted proxy is the client.
IPv6 callers are throttled by their /64: one host usually holds a whole /64.
"""
from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def networks(prefixes: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in prefixes)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Iterable[Network]) -> bool:
    return ip is not None and any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: list[str], trusted_proxies: tuple[str, ...]) -> str:
    """The caller's address; `forwarded_for` holds each X-Forwarded-For header's value."""
    trusted = networks(trusted_proxies)
    if not trusted or not _trusted(_ip(peer), trusted):
        return peer[:64]
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break  # a garbled hop: stop at the last proxy we trust
        if not _trusted(ip, trusted):
            return str(ip)
        peer = str(ip)
    return peer[:64]


def throttle_key(address: str) -> str:
    """An IPv4 address as it is; an IPv6 address as its /64."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address[:64]
