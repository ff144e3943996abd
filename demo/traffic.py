"""Traffic for the demo and the end-to-end test: attacks as hand-built frames, legitimate
HTTP requests over real TCP, a tiny HTTP server per site, and a receiver that counts
what got past XDP.

Attack frames are built once (rules_dsl.build_frame) and replayed through a packet
socket on the generator's end of each veth, paced per flow: every rate is fixed, the
sender stops at its deadline, and a stalled sender skips what it missed rather than
bursting. The default flows add up to about 800 packets/s per site.

Threads, not trio: each thread enters one namespace for its whole life (setns is per
thread) and the work is a handful of blocking syscalls per tick.
"""
from __future__ import annotations

import collections
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field

from bpf import in_netns
from demo.topology import Site
from rules_dsl import Packet, build_frame

TCP, UDP = 6, 17
SYN, ACK = 0x02, 0x10
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

DENIED_SOURCE = "203.0.113.66"      # on the hub's deny list from the start
GREEDY_SOURCE = "198.19.0.77"       # opens connections faster than its allowance
HTTP_PORT = 80


@dataclass(frozen=True)
class Flow:
    """One stream of identical-in-kind frames to one site, sent at `pps`."""
    name: str
    pps: float
    frames: tuple[bytes, ...]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frame(site: Site, src: str, *, proto: int, sport: int, dport: int, flags: int | None = None,
          length: int = 0) -> bytes:
    """An Ethernet/IPv4 frame from the generator's MAC to the site's, any source address."""
    return build_frame(Packet(l3="ipv4", src=ipaddress.IPv4Address(src), dst=ipaddress.IPv4Address(site.addr),
                              proto=proto, sport=sport, dport=dport, tcp_flags=flags, length=length, ttl=64),
                       src_mac=_mac(site.gen_mac), dst_mac=_mac(site.mac))


def attack_flows(site: Site, scale: float = 1.0) -> list[Flow]:
    """The attacks, as web.bw sees them:
    - syn-flood: SYNs to :80 from 4 bots at 100/s each, twice the per-source limit;
    - dns-reflection: 1200-byte answers from port 53 (web.bw passes them; v2 drops them);
    - ntp-reflection: 468-byte monlist answers from port 123 (web.bw's default drop);
    - denied-source: ACKs to :80 (which would pass) from an address on the deny list;
    - over-limit: one client's SYNs to :443 at 80/s against 50/s (drops once its burst is spent)."""
    def many(n: int, make) -> tuple[bytes, ...]:
        return tuple(make(i) for i in range(n))
    return [
        Flow("syn-flood", 400 * scale, many(64, lambda i: frame(
            site, f"198.19.1.{1 + i % 4}", proto=TCP, sport=20000 + i, dport=HTTP_PORT, flags=SYN))),
        Flow("dns-reflection", 100 * scale, many(64, lambda i: frame(
            site, f"198.19.53.{1 + i % 8}", proto=UDP, sport=53, dport=30000 + i, length=1200))),
        Flow("ntp-reflection", 100 * scale, many(64, lambda i: frame(
            site, f"198.19.123.{1 + i % 8}", proto=UDP, sport=123, dport=30000 + i, length=468))),
        Flow("denied-source", 100 * scale, many(16, lambda i: frame(
            site, DENIED_SOURCE, proto=TCP, sport=40000 + i, dport=HTTP_PORT, flags=ACK))),
        Flow("over-limit", 80 * scale, many(16, lambda i: frame(
            site, GREEDY_SOURCE, proto=TCP, sport=41000 + i, dport=443, flags=SYN))),
    ]


class _Worker(threading.Thread):
    """A daemon thread that runs until `stop`; a socket it owns is closed after it ends."""

    _sock: socket.socket | None = None

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        if self._sock is not None:
            self._sock.close()


class Sender(_Worker):
    """Replays flows from the generator namespace until stopped or `duration_s` is up."""

    TICK_S = 0.01

    def __init__(self, gen_ns: str, flows: list[tuple[Site, Flow]], duration_s: float):
        super().__init__("demo-sender")
        self.gen_ns, self.flows, self.duration_s = gen_ns, flows, duration_s
        self.sent: collections.Counter[tuple[int, str]] = collections.Counter()
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def start(self) -> "Sender":
        super().start()
        self._ready.wait(10)
        if self.error:
            raise self.error
        return self

    def run(self) -> None:
        socks: dict[str, socket.socket] = {}
        try:
            with in_netns(self.gen_ns):
                for site, _ in self.flows:
                    if site.gen_iface not in socks:
                        socks[site.gen_iface] = s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                        s.bind((site.gen_iface, 0))
            self._ready.set()
            self._loop(socks)
        except BaseException as exc:  # reported to whoever started or stops us
            self.error = exc
            self._ready.set()
        finally:
            for s in socks.values():
                s.close()

    def _loop(self, socks) -> None:
        credit = [0.0] * len(self.flows)
        start = last = time.monotonic()
        while not self._halt.is_set() and last - start < self.duration_s:
            self._halt.wait(self.TICK_S)
            now = time.monotonic()
            dt, last = min(now - last, 0.1), now  # after a stall: skip, never burst
            for i, (site, flow) in enumerate(self.flows):
                credit[i] += flow.pps * dt
                sock = socks[site.gen_iface]
                while credit[i] >= 1:
                    credit[i] -= 1
                    n = self.sent[(site.index, flow.name)]
                    try:
                        sock.send(flow.frames[n % len(flow.frames)])
                    except OSError:  # a full veth ring: this one is lost, as on a wire
                        pass
                    self.sent[(site.index, flow.name)] = n + 1


class Receiver(_Worker):
    """Counts, by IPv4 source, the frames that reach the site's stack, and when each source
    was last seen (time.monotonic): a packet socket on the protected interface sees only
    what XDP passed."""

    def __init__(self, site: Site):
        super().__init__(f"demo-receiver-{site.index}")
        self.site = site
        self.seen: collections.Counter[str] = collections.Counter()
        self.last_seen: dict[str, float] = {}
        with in_netns(site.ns):
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind((site.iface, ETH_P_ALL))
        self._sock.settimeout(0.2)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] != PACKET_OUTGOING and len(data) >= 34 and data[12:14] == b"\x08\x00":
                src = socket.inet_ntoa(data[26:30])
                self.seen[src] += 1
                self.last_seen[src] = time.monotonic()


def http_get(addr: str, *, source: str | None = None, timeout_s: float = 1.0) -> bool:
    """One HTTP request over a fresh TCP connection: True when the server answered 200.
    Opens its socket in the calling thread's namespace."""
    try:
        with socket.create_connection((addr, HTTP_PORT), timeout=timeout_s,
                                      source_address=(source, 0) if source else None) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            return reply.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


@dataclass
class Tally:
    """Legitimate requests' outcomes: totals and the last `window_s` seconds."""
    window_s: float = 10.0
    ok: int = 0
    failed: int = 0
    recent: collections.deque = field(default_factory=collections.deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, success: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.ok += success
            self.failed += not success
            self.recent.append((now, success))
            while self.recent and self.recent[0][0] < now - self.window_s:
                self.recent.popleft()

    def recent_rate(self) -> tuple[int, int]:
        """(successes, attempts) within the window."""
        with self.lock:
            return sum(ok for _, ok in self.recent), len(self.recent)


class Clients(_Worker):
    """Legitimate users: `rate` HTTP requests a second to one site, from the generator's
    own address on that link, each counted in `tally`."""

    def __init__(self, gen_ns: str, site: Site, rate: float, duration_s: float):
        super().__init__(f"demo-clients-{site.index}")
        self.gen_ns, self.site, self.rate, self.duration_s = gen_ns, site, rate, duration_s
        self.tally = Tally()

    def run(self) -> None:
        end = time.monotonic() + self.duration_s
        with in_netns(self.gen_ns):
            while not self._halt.is_set() and time.monotonic() < end:
                t = time.monotonic()
                self.tally.add(http_get(self.site.addr, source=self.site.gen_addr))
                self._halt.wait(max(0.0, 1 / self.rate - (time.monotonic() - t)))


class HttpServer(_Worker):
    """A tiny HTTP server on the site's address, port 80: answers 200 to anything."""

    REPLY = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

    def __init__(self, site: Site):
        super().__init__(f"demo-http-{site.index}")
        with in_netns(site.ns):
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((site.addr, HTTP_PORT))
        self._sock.listen(128)
        self._sock.settimeout(0.2)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(self.REPLY)
                except OSError:
                    pass
