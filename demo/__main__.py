"""`make demo` (python -m demo) and `make demo-stop` (python -m demo stop).

The demo brings up, in order: the network (demo.topology), a hub process with a first
admin, a tenant, a deny list and the web policy (two versions), two agent processes
enrolled with join tokens, a deployment of the policy to both, then servers, clients and
attacks (demo.traffic), and redraws what each agent counts every second (demo.display).
Everything it starts is stopped in reverse order on Ctrl-C, SIGTERM, an error or the end
of its time; `stop` clears what a killed run left behind (recorded processes, namespaces
named bwdemo-*, pins under /sys/fs/bpf/bwdemo). Run directory: .demo/ (logs, the hub's
SQLite database, agent state), wiped at the next start.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from demo.agents import AgentFailed, AgentProcess
from demo.display import AgentView, render
from demo.hub import HubCallFailed, HubProcess, open_tenant
from demo.observe import enforced
from demo.policy import DENY_LIST, hardened_policy, web_policy
from demo.processes import free_port, record, stop_recorded
from demo.topology import Topology, sweep
from demo.traffic import DENIED_SOURCE, GREEDY_SOURCE, Clients, HttpServer, Sender, attack_flows

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".demo"
PREFIX = "bwdemo"
ADMIN_EMAIL = "admin@example.com"


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def clean_leftovers() -> list[str]:
    return stop_recorded(RUN_DIR / "pids") + sweep(PREFIX)


def _stop_handler(owner: int):
    """SIGINT/SIGTERM → KeyboardInterrupt in the demo itself. pyroute2 forks helpers (to
    make namespaces) and SIGTERMs them when done; a fork must just exit, never run the
    demo's clean-up."""
    def handler(signum, frame):
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt
    return handler


def run(args: argparse.Namespace, out) -> None:
    say = functools.partial(print, file=out, flush=True)
    left = clean_leftovers()
    if left:
        say("cleared what an earlier run left: " + ", ".join(left))
    if port_in_use(args.port):
        raise SystemExit(f"demo: 127.0.0.1:{args.port} is taken; stop what listens there or pass --port")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    (RUN_DIR / "logs").mkdir(parents=True)
    record(RUN_DIR / "pids" / "demo.pid", os.getpid())
    stack = contextlib.ExitStack()
    try:
        _bring_up_and_watch(args, stack, say, out)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping: traffic, agents, hub; removing namespaces and pins")
        stack.close()


def _bring_up_and_watch(args, stack: contextlib.ExitStack, say, out) -> None:
    duration_s = args.minutes * 60
    say("network: namespaces bwdemo-gen, bwdemo-a1, bwdemo-a2 and their veths")
    topo = Topology.create(PREFIX, sites=2, extra_sources=(DENIED_SOURCE, GREEDY_SOURCE))
    stack.callback(topo.remove)

    url = f"http://127.0.0.1:{args.port}"
    hub = HubProcess(url=url, data_dir=RUN_DIR / "hub", bind=f"127.0.0.1:{args.port}",
                     log=RUN_DIR / "logs" / "hub.log", pid_file=RUN_DIR / "pids" / "hub.pid")
    password = secrets.token_urlsafe(12)
    say(f"hub: {url} (SQLite in {hub.data_dir})")
    say("  plain http on loopback: the demo's agents set allow_insecure_http, which a real agent must not "
        "(docs/hub.md, TLS)")
    otpauth = hub.create_admin(ADMIN_EMAIL, password, totp=True)  # every account needs 2FA
    hub.start()
    stack.callback(hub.stop)
    api = open_tenant(url, ADMIN_EMAIL, password, otpauth)
    stack.callback(api.close)
    secret = otpauth.split("secret=", 1)[1].split("&", 1)[0]
    notes = (f"  panel: {hub.panel_url}   sign in: {ADMIN_EMAIL} / {password}   tenant {api.tenant}",
             f"  then the 2FA code: add the key {secret} to an authenticator app, or print the current code with",
             f"    {sys.executable} -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\"",
             f"  API token (read, write, deploy): {api.token}",
             f"  try: curl -H 'Authorization: Bearer {api.token}' {url}/api/v1/tenants/{api.tenant}/agents")
    for note in notes:
        say(note)

    api.create_list(DENY_LIST, "deny", [f"{DENIED_SOURCE}/32"])
    policy = api.create_policy("web", web_policy())
    api.save_policy(policy["id"], hardened_policy())
    say(f"  deny list '{DENY_LIST}' with {DENIED_SOURCE}; policy 'web': v1 examples/web.bw with the hub's "
        "replies passed, v2 also drops reflected answers")

    agents = []
    for site in topo.sites:
        agent = AgentProcess(f"a{site.index}", site, topo.pin_root, RUN_DIR, free_port())
        agent.write_config()
        agent.enroll(url, api.join_token())
        api.rename_agent(agent.agent_id, f"demo-{agent.name}")  # both enrolled with this machine's hostname
        agent.start()
        stack.callback(agent.stop)
        agents.append(agent)
        say(f"agent {agent.name} (demo-{agent.name} in the panel): {agent.agent_id}, protects {site.iface} ({site.addr}) in netns {site.ns}")

    deployment = api.deploy(policy["id"], [a.agent_id for a in agents])
    say(f"deployed 'web' v2 ({deployment['digest'][:12]}) to both agents; waiting for them to apply it")
    for agent in agents:
        agent.wait_for("the deployment applied", lambda st: st.get("applied_digest") == deployment["digest"], 60)

    servers = [HttpServer(site) for site in topo.sites]
    clients = [Clients(topo.gen_ns, site, args.requests_per_s, duration_s) for site in topo.sites]
    flows = [(site, flow) for site in topo.sites for flow in attack_flows(site, args.scale)]
    sender = Sender(topo.gen_ns, flows, duration_s)
    for thread in (*servers, *clients):
        thread.start()
        stack.callback(thread.stop)
    sender.start()
    stack.callback(sender.stop)
    _watch(args, out, say, url=url, notes=notes, agents=agents, clients=clients, sender=sender,
           sent_pps=sum(flow.pps for _, flow in flows))


def _watch(args, out, say, *, url: str, notes: tuple[str, ...], agents: list[AgentProcess],
           clients: list[Clients], sender: Sender, sent_pps: float) -> None:
    """Redraw what each agent counts every refresh_s until the time is up."""
    start = time.monotonic()
    while time.monotonic() - start < sender.duration_s:
        views = [AgentView(agent.name, agent.site.addr, agent.site.ns, enforced(agent.config()), agent.status(),
                           client.tally.recent_rate(), (client.tally.ok, client.tally.ok + client.tally.failed))
                 for agent, client in zip(agents, clients)]
        screen = render(views, hub_url=url, elapsed_s=time.monotonic() - start,
                        window_s=clients[0].tally.window_s, sent_pps=sent_pps, notes=notes)
        say(("\x1b[H\x1b[2J" if out.isatty() else "") + screen)
        if sender.error:
            raise sender.error
        time.sleep(args.refresh_s)
    say(f"demo: {args.minutes:g} minutes are up")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo", description="Bulwark on two agents under attack")
    p.add_argument("command", nargs="?", choices=("run", "stop"), default="run")
    p.add_argument("--port", type=int, default=8080, help="the hub's port on 127.0.0.1")
    p.add_argument("--minutes", type=float, default=15, help="stop after this long")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every attack rate (about 1,600 packets/s)")
    p.add_argument("--requests-per-s", dest="requests_per_s", type=float, default=5.0,
                   help="legitimate HTTP requests per second to each agent's server")
    p.add_argument("--refresh-s", dest="refresh_s", type=float, default=1.0)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: needs root (namespaces, XDP, nftables), as `make test` does", file=sys.stderr)
        return 2
    if args.command == "stop":
        left = clean_leftovers()
        print("demo-stop: " + (", ".join(left) if left else "nothing left to clean"))
        return 0
    handler = _stop_handler(os.getpid())
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        run(args, sys.stdout)
    except KeyboardInterrupt:
        print("demo: stopped; namespaces, pins and processes removed", flush=True)
    except (AgentFailed, HubCallFailed) as exc:
        print(f"demo: {exc}\n(logs in {RUN_DIR / 'logs'}; everything it started was removed)", file=sys.stderr)
        return 1
    finally:
        (RUN_DIR / "pids" / "demo.pid").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
