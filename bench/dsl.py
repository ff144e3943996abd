"""Benchmark: parse + check + compile of a 1,000-rule policy, and of a policy that
references a 1,000,000-entry hub list (target: under 1 s each).

    python bench/dsl.py [--json FILE]

Peer, same run: `nft -c -f` (parse and check only, in a private network namespace made
by `unshare -n`) of 1,000 nftables rules of the same shapes, so the figure reads as
"what the kernel's own front end takes for as many rules".
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rules_dsl  # noqa: E402
from rules_dsl.evaluate import AddressIndex  # noqa: E402


def thousand_rules() -> str:
    rnd = random.Random(3)
    lines = ['policy "bench-1000"', "default drop", "pass tcp flags ack/syn|ack"]
    for i in range(60):
        lines.append(f"set s{i} {{ 10.{i}.0.0/16, 2001:db8:{i:x}::/48, 192.0.{i}.7 }}")
    shapes = [
        lambda i: f"drop tcp from @s{i % 60} dport {1000 + i}",
        lambda i: f"pass udp from @s{i % 60} dport {2000 + i}-{2010 + i} length 28-1400",
        lambda i: f"pass tcp dport {3000 + i} flags syn/syn|ack limit {10 + i % 50}/second "
                  f"burst {20 + i % 50} per src ipv6/64",
        lambda i: f"drop icmp type {i % 20} ttl < {1 + i % 30}",
        lambda i: f"drop proto {{ tcp, udp }} to @s{(i * 7) % 60} sport {i + 1} fragment no",
    ]
    for i in range(997):
        lines.append(rnd.choice(shapes)(i))
    return "\n".join(lines) + "\n"


def big_list_policy() -> str:
    return ('policy "bench-list"\ndefault pass\nset bans { list "one-million" }\n'
            "drop from @bans\npass tcp dport 22\n")


def thousand_nft_rules() -> str:
    """1,000 nftables rules shaped like `thousand_rules`, with the sets inline."""
    rnd = random.Random(3)
    shapes = [
        lambda i: f"ip saddr 10.{i % 60}.0.0/16 tcp dport {1000 + i} drop",
        lambda i: f"ip saddr 10.{i % 60}.0.0/16 udp dport {2000 + i}-{2010 + i} meta length 28-1400 accept",
        lambda i: f"tcp dport {3000 + i} tcp flags & (syn|ack) == syn limit rate {10 + i % 50}/second "
                  f"burst {20 + i % 50} packets accept",
        lambda i: f"icmp type {i % 20} ip ttl < {1 + i % 30} drop",
        lambda i: f"ip daddr 10.{(i * 7) % 60}.0.0/16 meta l4proto {{ tcp, udp }} th sport {i + 1} drop",
    ]
    body = "\n".join("  " + rnd.choice(shapes)(i) for i in range(1000))
    return f"table inet bench {{\n chain input {{\n  type filter hook input priority 0; policy drop;\n{body}\n }}\n}}\n"


def nft_check_seconds(text: str) -> float | None:
    """`nft -c -f` of the text in a private network namespace; None without nft or root."""
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
        f.write(text)
        f.flush()
        start = time.perf_counter()
        done = subprocess.run(["unshare", "-n", "nft", "-c", "-f", f.name], capture_output=True, text=True)
        took = time.perf_counter() - start
    if done.returncode != 0:
        print(f"nft peer unavailable: {done.stderr.strip()[:200]}", file=sys.stderr)
        return None
    return took


def timed(label: str, text: str) -> tuple[rules_dsl.Plan, float]:
    t0 = time.perf_counter()
    policy = rules_dsl.parse(text, "bench.bw")
    t1 = time.perf_counter()
    diags = rules_dsl.check(policy)
    t2 = time.perf_counter()
    plan = rules_dsl.compile(policy)
    t3 = time.perf_counter()
    errors = [d for d in diags if d.severity == "error"]
    assert not errors, errors[0].render()
    print(f"{label}: parse {t1 - t0:.3f} s + check {t2 - t1:.3f} s + compile {t3 - t2:.3f} s"
          f" = {t3 - t0:.3f} s  ({len(plan.xdp.rules)} rules, {len(diags)} warnings,"
          f" plan {len(plan.to_json())} bytes)")
    return plan, t3 - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, float | None] = {}
    _, out["rules_1000_s"] = timed("1,000 rules", thousand_rules())
    out["nft_check_1000_s"] = nft_check_seconds(thousand_nft_rules())
    if out["nft_check_1000_s"] is not None:
        print(f"peer: nft -c -f of 1,000 rules of the same shapes: {out['nft_check_1000_s']:.3f} s")
    plan, out["list_1m_policy_s"] = timed("1,000,000-entry list (referenced, not expanded)", big_list_policy())
    t0 = time.perf_counter()
    base = int(ipaddress.IPv4Address("100.64.0.0"))
    index = AddressIndex(ipaddress.IPv4Network((base + 4 * i, 32)) for i in range(1_000_000))
    t1 = time.perf_counter()
    pkt = rules_dsl.Packet("ipv4", ipaddress.IPv4Address(base + 4000), ipaddress.IPv4Address(1),
                           6, 1, 22, 2, 40, ttl=64)
    n = 10_000
    for _ in range(n):
        decision, _ = rules_dsl.evaluate(plan, pkt, None, 0, lists={"one-million": index})
    t2 = time.perf_counter()
    assert decision.verdict == "drop"
    out["evaluator_index_1m_s"] = t1 - t0
    out["evaluator_packet_us"] = (t2 - t1) / n * 1e6
    print(f"reference evaluator with the list loaded: index build {t1 - t0:.2f} s, "
          f"{(t2 - t1) / n * 1e6:.1f} us per packet")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
