"""Throwaway network labs for kernel tests: two namespaces joined by a veth pair.

The protected side (`ns`, `iface`) is where XDP and nftables go; the peer side sends.
Addresses come from the documentation ranges (192.0.2.0/24, 2001:db8::/64) and live
only inside the namespaces the lab made. `VethLab.remove()` deletes both namespaces,
which takes the veth pair and anything attached to it along.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import dataclass

from pyroute2 import NetNS, netns

from bpf import in_netns

_serial = itertools.count()


@dataclass
class VethLab:
    ns: str  # protected namespace
    peer_ns: str  # sender namespace
    iface: str
    peer_iface: str
    addr: str = "192.0.2.1"
    peer_addr: str = "192.0.2.2"
    addr6: str = "2001:db8::1"
    peer_addr6: str = "2001:db8::2"
    mac: str = ""
    peer_mac: str = ""

    @classmethod
    def create(cls, tag: str = "t") -> "VethLab":
        n = f"{os.getpid() % 100000}{next(_serial)}"
        lab = cls(ns=f"bw{tag}{n}a", peer_ns=f"bw{tag}{n}b", iface=f"bw{n}a", peer_iface=f"bw{n}b")
        netns.create(lab.ns)
        try:
            netns.create(lab.peer_ns)
            with NetNS(lab.ns) as ns:
                ns.link("add", ifname=lab.iface, kind="veth",
                        peer={"ifname": lab.peer_iface, "net_ns_fd": lab.peer_ns})
            mac = lab._configure(lab.ns, lab.iface, lab.addr, lab.addr6)
            peer_mac = lab._configure(lab.peer_ns, lab.peer_iface, lab.peer_addr, lab.peer_addr6)
            # static neighbours: no ARP/ND race, so the first packet sent is the first seen
            lab._neighbours(lab.ns, lab.iface, peer_mac, lab.peer_addr, lab.peer_addr6)
            lab._neighbours(lab.peer_ns, lab.peer_iface, mac, lab.addr, lab.addr6)
            lab.mac, lab.peer_mac = mac, peer_mac
        except BaseException:
            lab.remove()
            raise
        return lab

    @staticmethod
    def _configure(name: str, iface: str, addr: str, addr6: str) -> str:
        with NetNS(name) as ns:
            lo = ns.link_lookup(ifname="lo")[0]
            ns.link("set", index=lo, state="up")
            idx = ns.link_lookup(ifname=iface)[0]
            ns.addr("add", index=idx, address=addr, prefixlen=24)
            ns.addr("add", index=idx, address=addr6, prefixlen=64, flags=0x02)  # nodad
            ns.link("set", index=idx, state="up")
            return ns.get_links(idx)[0].get_attr("IFLA_ADDRESS")

    @staticmethod
    def _neighbours(name: str, iface: str, mac: str, *addrs: str) -> None:
        with NetNS(name) as ns:
            idx = ns.link_lookup(ifname=iface)[0]
            for addr in addrs:
                ns.neigh("add", dst=addr, lladdr=mac, ifindex=idx, state=0x80)  # NUD_PERMANENT

    def remove(self) -> None:
        for name in (self.ns, self.peer_ns):
            if name in netns.listnetns():
                netns.remove(name)

    def add_peer_address(self, addr: str) -> None:
        """Give the peer another source address, reachable from the protected side."""
        with NetNS(self.peer_ns) as ns:
            idx = ns.link_lookup(ifname=self.peer_iface)[0]
            ns.addr("add", index=idx, address=addr, prefixlen=32)
        with NetNS(self.ns) as ns:
            idx = ns.link_lookup(ifname=self.iface)[0]
            ns.route("add", dst=f"{addr}/32", oif=idx)

    def link_stats(self, side: str = "peer") -> dict[str, int]:
        """The interface's counters (rx/tx packets and drops) as netlink reports them."""
        name, iface = (self.peer_ns, self.peer_iface) if side == "peer" else (self.ns, self.iface)
        with NetNS(name) as ns:
            link = ns.get_links(ns.link_lookup(ifname=iface)[0])[0]
            return dict(link.get_attr("IFLA_STATS64"))

    def udp_socket(self, side: str = "peer", family: int = socket.AF_INET) -> socket.socket:
        """A UDP socket living in one side's namespace."""
        with in_netns(self.peer_ns if side == "peer" else self.ns):
            return socket.socket(family, socket.SOCK_DGRAM)

    def send_udp(self, count: int, dport: int, *, payload: bytes = b"x" * 32,
                 pace_every: int = 64, pause_s: float = 0.002) -> int:
        """Send `count` UDP datagrams from the peer to the protected address, paced so the
        veth ring never overflows (a drop there would not be the program's doing)."""
        with self.udp_socket("peer") as sock:
            for i in range(count):
                sock.sendto(payload, (self.addr, dport))
                if pace_every and i % pace_every == pace_every - 1:
                    time.sleep(pause_s)
        return count
