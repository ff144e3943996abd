"""The demo's network: one generator namespace joined to N protected namespaces.

    <prefix>-gen ──veth <prefix>-g1 ══ <prefix>-a1── <prefix>-a1   (agent 1 protects -a1)
                 └─veth <prefix>-g2 ══ <prefix>-a2── <prefix>-a2   (agent 2 protects -a2)

Site i uses 198.18.i.0/24 (RFC 2544's benchmarking range): the protected side is .1,
the generator .2. Each protected namespace routes everything else back to the generator,
so replies to the generator's extra source addresses (and to spoofed ones) go nowhere
else; the generator does not forward. Neighbours are static, so no ARP race decides
which packet is seen first.

Everything is named from one prefix, so `sweep(prefix)` finds what a crashed run left.
Only namespaces this module creates are touched; the veths live and die with them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import NetNS, netns

NUD_PERMANENT = 0x80
BPFFS = Path("/sys/fs/bpf")


@dataclass(frozen=True)
class Site:
    """One protected namespace and the generator's end of its veth."""
    index: int
    ns: str
    iface: str        # the protected interface (agent side)
    gen_iface: str    # the generator's end
    addr: str
    gen_addr: str
    mac: str = ""
    gen_mac: str = ""


@dataclass
class Topology:
    prefix: str
    gen_ns: str
    sites: list[Site] = field(default_factory=list)
    extra_sources: tuple[str, ...] = ()

    @property
    def pin_root(self) -> Path:
        """Where this run's agents pin their maps and links (one directory per run)."""
        return BPFFS / self.prefix

    @classmethod
    def create(cls, prefix: str, sites: int = 2, extra_sources: tuple[str, ...] = ()) -> "Topology":
        """Make the namespaces and veths; on any failure, remove what was made and re-raise.

        `extra_sources` are host addresses given to the generator (on its loopback), so
        kernel sockets there can send from them (a denied source, for instance)."""
        if len(prefix) > 11:
            raise ValueError(f"prefix {prefix!r} too long: interface names are at most 15 bytes")
        topo = cls(prefix=prefix, gen_ns=f"{prefix}-gen", extra_sources=tuple(extra_sources))
        try:
            netns.create(topo.gen_ns)
            _loopback_up(topo.gen_ns, extra_sources)
            for i in range(1, sites + 1):
                topo.sites.append(topo._add_site(i))
        except BaseException:
            topo.remove()
            raise
        return topo

    def _add_site(self, i: int) -> Site:
        site = Site(index=i, ns=f"{self.prefix}-a{i}", iface=f"{self.prefix}-a{i}",
                    gen_iface=f"{self.prefix}-g{i}", addr=f"198.18.{i}.1", gen_addr=f"198.18.{i}.2")
        netns.create(site.ns)
        _loopback_up(site.ns, ())
        with NetNS(site.ns) as ns:
            ns.link("add", ifname=site.iface, kind="veth",
                    peer={"ifname": site.gen_iface, "net_ns_fd": self.gen_ns})
        mac = _configure(site.ns, site.iface, site.addr)
        gen_mac = _configure(self.gen_ns, site.gen_iface, site.gen_addr)
        _neighbour(site.ns, site.iface, site.gen_addr, gen_mac)
        _neighbour(self.gen_ns, site.gen_iface, site.addr, mac)
        with NetNS(site.ns) as ns:
            ns.route("add", dst="0.0.0.0/0", gateway=site.gen_addr)
        return dataclasses.replace(site, mac=mac, gen_mac=gen_mac)

    def remove(self) -> None:
        """Delete this run's namespaces (their veths go with them) and its pin directory."""
        sweep(self.prefix)


def sweep(prefix: str) -> list[str]:
    """Remove every namespace named `<prefix>-...` and the pin directory /sys/fs/bpf/<prefix>.
    Returns what was removed. Processes using them must be stopped first."""
    removed = []
    for name in netns.listnetns():
        if name.startswith(prefix + "-"):
            with contextlib.suppress(OSError):
                netns.remove(name)
                removed.append(f"netns {name}")
    pins = BPFFS / prefix
    if pins.exists():
        shutil.rmtree(pins, ignore_errors=True)
        removed.append(f"pins {pins}")
    return removed


def _loopback_up(name: str, addresses: tuple[str, ...]) -> None:
    with NetNS(name) as ns:
        lo = ns.link_lookup(ifname="lo")[0]
        ns.link("set", index=lo, state="up")
        for addr in addresses:
            ipaddress.IPv4Address(addr)  # host addresses only
            ns.addr("add", index=lo, address=addr, prefixlen=32)


def _configure(name: str, iface: str, addr: str) -> str:
    with NetNS(name) as ns:
        idx = ns.link_lookup(ifname=iface)[0]
        ns.addr("add", index=idx, address=addr, prefixlen=24)
        ns.link("set", index=idx, state="up")
        return ns.get_links(idx)[0].get_attr("IFLA_ADDRESS")


def _neighbour(name: str, iface: str, addr: str, mac: str) -> None:
    with NetNS(name) as ns:
        idx = ns.link_lookup(ifname=iface)[0]
        ns.neigh("add", dst=addr, lladdr=mac, ifindex=idx, state=NUD_PERMANENT)
