"""Agent test helpers: small policies, a config pointing into the test's own pin and
state directories, and probes that ask the kernel what it enforces."""
from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import AgentConfig

# drops 203.0.113.0/24 and UDP to 9999; stateful: drops TCP to port 23
POLICY_A = """policy "agent-a"
default pass
set bad { 203.0.113.0/24 }
drop from @bad
drop udp dport 9999
stateful {
    drop tcp dport 23
}
"""
# drops 198.51.100.0/24 and UDP to 7777; stateful: drops TCP to port 24
POLICY_B = """policy "agent-b"
default pass
set bad { 198.51.100.0/24, list "ban" }
drop from @bad
drop udp dport 7777
stateful {
    drop tcp dport 24
}
"""


@pytest.fixture
def make_config(tmp_path):
    def make(lab=None, pin_dir=None, **kw) -> AgentConfig:
        base = dict(name="t", pin_root=str(pin_dir) if pin_dir else str(tmp_path / "pins"),
                    state_root=str(tmp_path / "state"), http_port=0, watchdog_interval_s=0.2,
                    sample_interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.5,
                    allow_insecure_http=True)  # the test hubs serve plain http on loopback
        if lab is not None:
            base.update(iface=lab.iface, netns=lab.ns, xdp_mode="native")
        base.update(kw)
        return AgentConfig(**base)
    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubProcess:
    """A real hub (tests/agent/hub_server.py) on a loopback port; can be stopped and
    started again on the same data and port (a hub going away and coming back)."""

    def __init__(self, data_dir: Path, tls: tuple[Path, Path, Path] | None = None):
        self.port = free_port()
        self.data_dir = data_dir
        self.tls = tls  # (certfile, keyfile, CA file): serve https
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> dict:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.agent.hub_server", str(self.data_dir), str(self.port),
             *map(str, self.tls or ())],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        return self.info

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None

    def __getitem__(self, key):  # hub["url"], hub["join_token"] ...
        return self.info[key]


@pytest.fixture
def hub_process(tmp_path):
    hub = HubProcess(tmp_path / "hub")
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def frame(src: str, dport: int, *, dst: str = "192.0.2.1", proto: int = 17, sport: int = 4000) -> bytes:
    """An Ethernet/IPv4 frame for BPF_PROG_TEST_RUN."""
    from rules_dsl import Packet, build_frame

    return build_frame(Packet(l3="ipv4", src=ipaddress.ip_address(src), dst=ipaddress.ip_address(dst),
                              proto=proto, sport=sport, dport=dport, tcp_flags=0x02 if proto == 6 else None,
                              length=60, ttl=64))


PROBES = [("203.0.113.9", 5000), ("198.51.100.9", 5000), ("192.0.2.2", 9999), ("192.0.2.2", 7777),
          ("192.0.2.2", 5000)]
VERDICT_A = ("drop", "pass", "drop", "pass", "pass")
VERDICT_B = ("pass", "drop", "pass", "drop", "pass")


def guard_verdicts(pin_dir) -> tuple[str, ...]:
    """What the pinned maps decide for PROBES, through a program sharing them."""
    from bpf import XdpAction
    from bpf.guard import Guard

    with Guard(pinned=pin_dir) as g:
        out = []
        for src, dport in PROBES:
            retval = g.program.test_run(frame(src, dport)).retval
            out.append("drop" if retval == XdpAction.DROP else "pass")
        return tuple(out)


def nft_table(ns: str):
    """Names of what is in table inet bulwark in the namespace (None: no table)."""
    from bpf import Nft, NftError, in_netns

    with in_netns(ns):
        nft = Nft()
    try:
        objs = nft.list("table inet bulwark")
    except NftError:
        return None
    finally:
        nft.close()
    return objs


def nft_rule_ports(ns: str) -> set[int] | None:
    objs = nft_table(ns)
    if objs is None:
        return None
    ports = set()
    for o in objs:
        if "rule" in o:
            for e in o["rule"]["expr"]:
                m = e.get("match")
                if m and isinstance(m.get("right"), int) and "payload" in m.get("left", {}) \
                        and m["left"]["payload"].get("field") == "dport":
                    ports.add(m["right"])
    return ports


def nft_counter(ns: str, comment: str) -> int:
    """Packets counted by the rule of our table with that comment (-1: no such rule)."""
    for o in nft_table(ns) or ():
        if "rule" in o and o["rule"].get("comment") == comment:
            return sum(e["counter"]["packets"] for e in o["rule"]["expr"] if "counter" in e)
    return -1


def tcp_connects(lab, dport: int) -> bool:
    """Whether a TCP connection from the peer reaches a listener on the protected side."""
    from bpf import in_netns

    with in_netns(lab.ns):
        listener = socket.socket()
    with in_netns(lab.peer_ns):
        client = socket.socket()
    with listener, client:
        listener.bind((lab.addr, dport))
        listener.listen()
        client.settimeout(1.0)
        try:
            client.connect((lab.addr, dport))
        except OSError:
            return False
        return True


def udp_delivered(lab, src: str, dport: int, count: int = 20) -> int:
    """Datagrams from src that reach a listener on the protected side."""
    from bpf import in_netns

    with in_netns(lab.ns):
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with in_netns(lab.peer_ns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender, listener:
        listener.bind((lab.addr, dport))
        listener.settimeout(0.2)
        sender.bind((src, 0))
        for _ in range(count):
            sender.sendto(b"x" * 32, (lab.addr, dport))
        got = 0
        deadline = time.monotonic() + 1
        try:
            while time.monotonic() < deadline:
                listener.recv(2048)
                got += 1
        except TimeoutError:
            pass
        return got


@pytest.fixture(autouse=True)
def no_machine_id(monkeypatch, tmp_path_factory):
    """In-process enrolments here share hubs across tests under one agent name: without a
    machine-id they are not clones of each other (tests/agent/test_machine_id.py and
    tests/hub/test_agents.py cover the clash)."""
    import agent.hub_link

    monkeypatch.setattr(agent.hub_link, "MACHINE_ID", str(tmp_path_factory.getbasetemp() / "no-machine-id"))
