"""The package as a hoster installs it: built (`packaging/build.py`, two releases), installed
with `dpkg -i` on this machine, the installed agent enrolled with a hub and protecting a
namespace (as tests/e2e/test_fleet.py), upgraded to the second build while a denied source
sends packets (none passes: the old program stays pinned, the new agent swaps its program in
through the link), then purged: no file, pin, table or XDP program is left.

systemd is not PID 1 on the CI machines, so the installed agent is run directly (the unit's
ExecStart) with NOTIFY_SOCKET pointing at the test, which checks READY=1 arrives once the
plan is applied. The units' exposure scores are printed too."""
from __future__ import annotations

import os
import shutil
import tempfile
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.agents import AgentProcess
from demo.hub import HubProcess, open_tenant
from demo.policy import DENY_LIST, web_policy
from demo.processes import free_port, spawn, stop
from demo.topology import Topology
from demo.traffic import DENIED_SOURCE, Receiver, Sender
from tests.e2e.test_fleet import ack_flow
from tests.package.test_units import UNITS, exposure

pytestmark = [pytest.mark.kernel, pytest.mark.package]

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = Path("/opt/bulwark/bin/bulwark")
CONFIG = Path("/etc/bulwark/agent.toml")
CONTROL = "198.19.9.9"  # passes web.bw: proof the stream really flowed through the upgrade
LEFTOVERS = ["/opt/bulwark", "/etc/bulwark", "/var/lib/bulwark", "/usr/bin/bulwark",
             "/lib/systemd/system/bulwark-agent.service", "/lib/systemd/system/bulwark-hub.service",
             "/sys/fs/bpf/bulwark"]
EMAIL, PASSWORD = "ops@example.com", "correct horse battery staple"


def sh(*argv: str, timeout: float = 300) -> str:
    """Run argv as an operator would: without this test run's PYTHONPATH (the source tree), so
    the installed agent and the package scripts run only what the package holds."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, f"{' '.join(argv)}: {out.stdout}{out.stderr}"
    return out.stdout + out.stderr


def installed() -> bool:
    return subprocess.run(["dpkg-query", "-W", "-f=${Status}", "bulwark"], capture_output=True,
                          text=True).stdout.startswith("install ok")


@pytest.fixture(scope="module")
def work_dir():
    """Under the worktree's build/, not pytest's tmp: concurrent pytest runs prune each other's
    old tmp directories, and this test outlives a few of them."""
    (ROOT / "build").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="package-test-", dir=ROOT / "build"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def debs(work_dir):
    if not Path("/usr/bin/dpkg").exists():
        pytest.skip("not a Debian machine (dpkg missing)")
    if installed() or Path("/opt/bulwark").exists() or CONFIG.exists():
        pytest.skip("a bulwark package or /opt/bulwark is already here: not touching it")
    out = work_dir
    made = []
    for release in ("1", "2"):
        proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--out", str(out / release),
                               "--release", release, "--format", "deb"], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        made.append(Path(proc.stdout.split()[-1]))
    return made


class Notify:
    """The NOTIFY_SOCKET systemd would give the unit: collects what the agent sends."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def close(self) -> None:
        self.sock.close()

    def wait_ready(self, timeout_s: float = 60) -> str:
        self.sock.settimeout(timeout_s)
        while True:
            message = self.sock.recv(4096).decode()
            if "READY=1" in message.split("\n"):
                return message


class InstalledAgent(AgentProcess):
    """An AgentProcess run from the package: its binary, /etc/bulwark/agent.toml, default pins and state."""

    @property
    def config_path(self) -> Path:
        return CONFIG

    def write_config(self, **extra):
        CONFIG.parent.mkdir(parents=True, exist_ok=True)
        CONFIG.write_text(f'name = "{self.name}"\niface = "{self.site.iface}"\nnetns = "{self.site.ns}"\n'
                          f'xdp_mode = "native"\nhttp_port = {self.http_port}\nsample_interval_s = 1.0\n'
                          "allow_insecure_http = true\n")

    def enroll(self, hub_url: str, join_token: str) -> str:
        sh(str(INSTALLED), "agent", "enroll", "--config", str(CONFIG), "--hub", hub_url, "--token", join_token)
        import json
        self.agent_id = json.loads(Path(f"/var/lib/bulwark/agent/{self.name}/credential.json").read_text())["agent_id"]
        return self.agent_id

    def start_notified(self, notify: Notify) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": str(notify.path),
               "BULWARK_AGENT_CONFIG": str(CONFIG)}
        self.proc = spawn([str(INSTALLED), "agent", "run"], self.log, env=env)


def left_behind(site) -> list[str]:
    found = [p for p in LEFTOVERS if os.path.lexists(p)]
    if installed():
        found.append("dpkg: bulwark still installed")
    if subprocess.run(["getent", "passwd", "bulwark-hub"], capture_output=True).returncode == 0:
        found.append("user bulwark-hub")
    link = sh("ip", "-n", site.ns, "-d", "link", "show", site.iface)
    if "prog/xdp" in link or " xdp" in link:
        found.append(f"XDP program on {site.iface}")
    tables = sh("ip", "netns", "exec", site.ns, "nft", "list", "tables")
    if "bulwark" in tables:
        found.append(f"nftables: {tables.strip()}")
    return found


def test_install_run_upgrade_under_attack_purge(debs, work_dir):
    tmp_path = work_dir
    for name in ("bulwark-agent.service", "bulwark-hub.service"):
        print(f"\nsystemd-analyze security --offline=true {name}: {exposure(UNITS / name)}")
    print(f"systemd is PID 1: {Path('/run/systemd/system').is_dir()} (if not, the agent runs directly)")
    topo = Topology.create(f"bwp{os.getpid() % 100000}", sites=1)
    site = topo.sites[0]
    port = free_port()
    hub = HubProcess(url=f"http://127.0.0.1:{port}", data_dir=tmp_path / "hub", bind=f"127.0.0.1:{port}",
                     log=tmp_path / "hub.log")
    agent, api, receiver = None, None, None
    try:
        sh("dpkg", "-i", str(debs[0]))
        assert not os.path.exists("/etc/systemd/system/multi-user.target.wants/bulwark-agent.service")
        otpauth = hub.create_admin(EMAIL, PASSWORD, totp=True)
        hub.start()
        api = open_tenant(hub.url, EMAIL, PASSWORD, otpauth)
        api.create_list(DENY_LIST, "deny", [f"{DENIED_SOURCE}/32"])
        agent = InstalledAgent("pkg", site, Path("/sys/fs/bpf/bulwark"), tmp_path, free_port())
        agent.write_config()
        agent.enroll(hub.url, api.join_token())
        notify = Notify(tmp_path / "notify")
        agent.start_notified(notify)
        assert "READY=1" in notify.wait_ready()  # every actor runs; no plan yet
        notify.close()
        digest = api.deploy(api.create_policy("web", web_policy())["id"], [agent.agent_id])["digest"]
        agent.wait_for("the plan applied", lambda st: st.get("applied_digest") == digest, 60)

        receiver = Receiver(site)
        receiver.start()
        sender = Sender(topo.gen_ns, [ack_flow(site, DENIED_SOURCE, "denied"), ack_flow(site, CONTROL, "control")],
                        60).start()
        time.sleep(0.5)
        sh("dpkg", "-i", str(debs[1]))  # unpacked under the running agent, as an upgrade does
        assert sh("dpkg-query", "-W", "-f=${Version}", "bulwark").endswith("-2")
        stop(agent.proc)  # what the postinst's try-restart does under systemd
        notify2 = Notify(tmp_path / "notify2")
        agent.start_notified(notify2)
        ready = notify2.wait_ready()
        notify2.close()
        assert f"plan {digest[:12]}" in ready  # READY only once the persisted plan is in force again
        control_before = receiver.seen[CONTROL]
        time.sleep(1.0)
        sender.stop()
        sender.join(5)
        assert receiver.seen[DENIED_SOURCE] == 0, "a denied packet passed during the upgrade"
        assert receiver.seen[CONTROL] > control_before > 0, "the control stream did not flow through the upgrade"
        stop(agent.proc)
        agent.proc = None
        purge = sh("dpkg", "--purge", "bulwark")
        assert left_behind(site) == [], purge
    finally:
        if receiver is not None:
            receiver.stop()
        if agent is not None and agent.proc is not None:
            stop(agent.proc)
        if installed():
            subprocess.run(["dpkg", "--purge", "bulwark"], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", *[p for p in LEFTOVERS if not p.startswith("/sys")]])
        hub.stop()
        if api is not None:
            api.close()
        topo.remove()
