"""Fixed words of the language and the numbers they stand for."""
from __future__ import annotations

import difflib

TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08,
             "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80}
# Named combinations, as (mask, value): usable alone in a `flags` matcher.
FLAG_COMBOS = {
    "null": (0x3F, 0x00),   # no flag among fin..urg: a null scan
    "xmas": (0x29, 0x29),   # fin, psh and urg together: an xmas scan
}
FLAG_WORDS = set(TCP_FLAGS) | set(FLAG_COMBOS) | {"none"}

PROTOCOLS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "gre": 47,
             "esp": 50, "ah": 51, "icmpv6": 58, "sctp": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
PORT_PROTOCOLS = {6, 17}

ICMP_TYPES = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
    "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13,
    "timestamp-reply": 14,
}
ICMPV6_TYPES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
    "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
    "mld-listener-query": 130, "mld-listener-report": 131, "nd-router-solicit": 133,
    "nd-router-advert": 134, "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136,
    "nd-redirect": 137,
}

PORT_NAMES = {
    "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53, "http": 80,
    "pop3": 110, "ntp": 123, "imap": 143, "snmp": 161, "bgp": 179, "ldap": 389,
    "https": 443, "smtps": 465, "syslog": 514, "submission": 587, "imaps": 993,
    "pop3s": 995, "mysql": 3306, "rdp": 3389, "postgresql": 5432, "redis": 6379,
    "memcache": 11211, "minecraft": 25565,
}

# Rate units: multiplier to the base unit (packets or bytes).
RATE_UNITS = {"packets": ("packets", 1), "bytes": ("bytes", 1), "kbytes": ("bytes", 1024),
              "mbytes": ("bytes", 1024 ** 2), "gbytes": ("bytes", 1024 ** 3)}
PER_SECOND = {"s": "second", "sec": "second", "second": "second"}
PER_ANY = {**PER_SECOND, "m": "minute", "min": "minute", "minute": "minute",
           "h": "hour", "hour": "hour", "d": "day", "day": "day"}
CT_STATES = ("established", "related", "new", "invalid", "untracked")

# Words people bring from nftables, pf and iptables, and what we call them.
SYNONYMS = {
    "port": "dport", "dst-port": "dport", "destination-port": "dport", "src-port": "sport",
    "source-port": "sport", "saddr": "from", "src": "from", "source": "from",
    "daddr": "to", "dst": "to", "destination": "to", "accept": "pass", "allow": "pass",
    "permit": "pass", "deny": "drop", "block": "drop", "reject": "drop", "ratelimit": "limit",
    "rate": "limit", "protocol": "proto", "tcp-flags": "flags", "icmp-type": "type",
    "frag": "fragment", "hoplimit": "ttl", "hop-limit": "ttl", "len": "length",
    "table": "set", "ip": "from", "ip6": "from", "state": "ct state",
}


def suggest(word: str, choices, synonyms: bool = True) -> str | None:
    """'did you mean ...?' for a misspelt or foreign word, or None."""
    word_l = word.lower()
    choices = sorted({c for c in choices if c})
    if synonyms and word_l in SYNONYMS and SYNONYMS[word_l].split()[0] in choices:
        return SYNONYMS[word_l]
    # typing errors first: a swapped pair ('dprot') is one slip, as in Damerau's distance
    near = [(edit_distance(word_l, c), c) for c in choices]
    best = min(near, default=None)
    if best is not None and best[0] <= max(1, len(word_l) // 3):
        ties = [c for d, c in near if d == best[0]]
        return max(ties, key=lambda c: (difflib.SequenceMatcher(None, word_l, c).ratio(), c))
    close = difflib.get_close_matches(word_l, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and
    transpositions of neighbours each cost one."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]
