"""How long a list change takes to reach the wire, timed the way a user would: ACKs from
one source to every site's HTTP port (web.bw passes them unless the source is denied),
then from the change until the last of them is seen behind any guard.

The end-to-end test (tests/e2e/test_fleet.py) and the scale benchmark (bench/e2e_scale.py)
both time their changes through `timed_change`; a packet socket behind each guard
(`traffic.Receiver`) sees only what XDP passed.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from demo.topology import Site
from demo.traffic import ACK, HTTP_PORT, TCP, Flow, Receiver, Sender, frame

QUIET_S = 0.5  # a source unseen this long on every site counts as enforced


def ack_flow(site: Site, src: str, name: str, pps: float = 200) -> tuple[Site, Flow]:
    """ACKs to the site's HTTP port from src: web.bw passes them unless src is denied."""
    return site, Flow(name, pps, (frame(site, src, proto=TCP, sport=45000, dport=HTTP_PORT, flags=ACK),))


def probe(gen_ns: str, sites: Sequence[Site], source: str, pps: float, seconds: float) -> Sender:
    """ACKs from `source` to every site at `pps` each (1 ms resolution at 1,000)."""
    return Sender(gen_ns, [ack_flow(site, source, f"probe-{source}", pps) for site in sites], seconds).start()


def wait_seen(receivers: Sequence[Receiver], source: str, timeout_s: float = 10) -> None:
    """Until every site has seen `source`. Raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while not all(r.seen[source] for r in receivers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{source} never reached every site before being denied")
        time.sleep(0.01)


def enforced_after(receivers: Sequence[Receiver], source: str, t0: float, timeout_s: float = 60) -> float:
    """Seconds from t0 to the last packet of `source` seen on any site, once it is quiet on
    every site. Raises TimeoutError if it never goes quiet."""
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        now = time.monotonic()
        if all(now - r.last_seen.get(source, 0.0) > QUIET_S for r in receivers):
            return max(0.0, max(r.last_seen.get(source, t0) for r in receivers) - t0)
        time.sleep(0.01)
    raise TimeoutError(f"{source} still passes {timeout_s:g} s after it was denied")


def timed_change(gen_ns: str, sites: Sequence[Site], receivers: Sequence[Receiver], source: str,
                 change: Callable[[], Any], *, pps: float = 1000, timeout_s: float = 60) -> float:
    """Probe `source` until every site sees it, call `change` (which denies it), and return
    the seconds from the call to its last packet behind any guard."""
    sender = probe(gen_ns, sites, source, pps, timeout_s + 10)
    try:
        wait_seen(receivers, source)
        t0 = time.monotonic()
        change()
        return enforced_after(receivers, source, t0, timeout_s)
    finally:
        sender.stop()
