"""`bulwark agent ...`: protect this server.

    apply POLICY.bw --iface IF [--xdp-mode M]   install and return (stays pinned)
    run [--policy POLICY.bw] --iface IF          the daemon (standalone, or managed once enrolled)
    status [--json]                              what is installed (from the pins), live rates if running
    detach [--iface IF]                          remove what this agent installed, nothing else
    enroll --hub URL --token-stdin [--hub-ca-sha256 HEX] [--allow-insecure-http]
                                                 managed mode: store a credential (0600), pin the hub;
                                                 the join token from stdin or BULWARK_JOIN_TOKEN
                                                 (argv is visible to every user in `ps`)
    uninstall                                    detach every agent here, remove pins and state
    check-config                                 validate the config (systemd ExecStartPre)

Common flags: --config FILE, --name, --netns, --pin-root, --state-root, --http-port.
Exit codes: 0 ok, 1 the world failed (kernel, hub, disk), 2 bad input (config, policy).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from agent.config import AgentConfig, ca_pin, load_config
from agent.errors import AgentError, ConfigError, HubError, NotInstalled, PolicyRejected


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulwark agent", description="protect this server")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="TOML config file")
        sp.add_argument("--name", help="this agent's name (its pins and state are kept under it)")
        sp.add_argument("--iface", help="the interface to protect")
        sp.add_argument("--netns", help="the network namespace the interface is in (not `ip netns exec`)")
        sp.add_argument("--xdp-mode", dest="xdp_mode", choices=("native", "generic", "auto"),
                        help="how XDP attaches (auto: native, else generic)")
        sp.add_argument("--pin-root", dest="pin_root", help="the bpffs directory pins go under")
        sp.add_argument("--state-root", dest="state_root", help="the directory state goes under")
        sp.add_argument("--http-port", dest="http_port", type=int,
                        help="the local /status and /metrics port")

    sp = sub.add_parser("apply", help="install a policy and return")
    common(sp)
    sp.add_argument("policy", help="the policy file (.bw)")
    sp = sub.add_parser("run", help="run the daemon")
    common(sp)
    sp.add_argument("--policy", help="the policy file (.bw) to enforce standalone")
    sp = sub.add_parser("status", help="show what is installed")
    common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = sub.add_parser("detach", help="remove everything this agent installed")
    common(sp)
    sp = sub.add_parser("uninstall", help="detach every agent on this machine and remove their pins "
                        "and state (what purging the package runs)")
    common(sp)
    sp = sub.add_parser("enroll", help="enrol with a hub")
    common(sp)
    sp.add_argument("--hub", required=True, help="the hub's URL")
    sp.add_argument("--token-stdin", dest="token_stdin", action="store_true",
                    help="read the join token from the first line of stdin")
    sp.add_argument("--token", help=f"the join token (visible in `ps`: prefer --token-stdin or {TOKEN_ENV})")
    sp.add_argument("--force", action="store_true",
                    help="enrol even when the hub has an agent with this machine's /etc/machine-id (a clone)")
    sp.add_argument("--hub-ca-sha256", dest="hub_ca_sha256",
                    help="trust only the CA certificate with this SHA-256 (of its DER) for the hub")
    sp.add_argument("--allow-insecure-http", dest="allow_insecure_http", action="store_true", default=None,
                    help="accept an http:// hub (tests, demos): nothing is encrypted")
    sp = sub.add_parser("check-config", help="validate the configuration")
    common(sp)
    return p


TOKEN_ENV = "BULWARK_JOIN_TOKEN"
FLAG_KEYS = ("name", "iface", "netns", "xdp_mode", "pin_root", "state_root", "http_port", "policy",
             "hub_ca_sha256", "allow_insecure_http")


def config_from(args: argparse.Namespace) -> AgentConfig:
    flags = {k: getattr(args, k, None) for k in FLAG_KEYS}
    return load_config(file=args.config, flags=flags)


def _managed(config: AgentConfig) -> tuple[AgentConfig, dict | None]:
    """The config completed from the credential (hub URL, the CA pin given at enrolment).
    Raises ConfigError for a hub this config may not use."""
    from agent import transport
    from agent.hub_link import hub_endpoint, load_credential

    cred = load_credential(config)
    if cred is None:
        return config, None
    changes: dict[str, Any] = {"hub_url": cred["hub_url"]}
    if cred.get("hub_ca_sha256"):
        if config.hub_ca_sha256 and ca_pin(config.hub_ca_sha256) != cred["hub_ca_sha256"]:
            raise ConfigError("hub_ca_sha256 differs from the pin given at enrolment; enrol again to change it")
        changes["hub_ca_sha256"] = cred["hub_ca_sha256"]
    transport.check_url(config, cred["hub_url"])
    if config.hub_address is None or config.hub_port is None:
        addr, port = hub_endpoint(cred["hub_url"])
        changes["hub_address"] = config.hub_address or addr
        changes["hub_port"] = config.hub_port or port
    return config.replace(**changes), cred


def cmd_apply(config: AgentConfig) -> int:
    from agent.daemon import policy_desired
    from agent.dataplane import Dataplane
    from agent.standalone import install

    desired = policy_desired(config)
    dp = Dataplane(config)
    try:
        result = install(dp, desired)
    finally:
        dp.close()
    print(f"applied {desired.plan.name} ({desired.digest[:12]}) on {config.iface}: "
          f"xdp {result['xdp_mode']}, nftables table {'none' if result['nft_table'] == 'none' else 'installed'}")
    if result["fallback_reason"]:
        print(f"note: {result['fallback_reason']}")
    return 0


def cmd_run(config: AgentConfig) -> int:
    import trio

    from agent.daemon import main, policy_desired

    config, cred = _managed(config)
    initial = policy_desired(config) if config.policy else None
    if cred is None and initial is None and not config.state_dir.joinpath("applied.json").exists():
        raise ConfigError("nothing to enforce: give --policy, or enroll with a hub first")
    trio.run(lambda: main(config, initial=initial, credential=cred))
    return 0


def cmd_status(config: AgentConfig, as_json: bool) -> int:
    from agent.standalone import status

    st = status(config)
    if as_json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print(f"agent {st['agent']}: {st['mode']} on {st['iface']}"
          f"{' in netns ' + st['netns'] if st['netns'] else ''}")
    print(f"  xdp: {'attached (' + str(st['xdp_mode']) + ')' if st['attached'] else 'NOT attached'}")
    note = " (awaiting the hub's confirmation)" if st["awaiting_confirmation"] else ""
    print(f"  plan: {st['policy']} {(st['digest'] or '')[:12]}{note}")
    if st["reverted_from"]:
        digest, deployment = st["reverted_from"]
        print(f"  reverted from {(digest or 'none')[:12]} (deployment {deployment}): held back until "
              "the hub names another deployment")
    for slot, c in sorted(st["counters"].items()):
        print(f"  rule {slot}: {c['packets']} packets, {c['bytes']} bytes, {c['dropped']} dropped")
    live = st.get("daemon")
    if live:
        for rule, r in sorted(live["rates"].items()):
            print(f"  {rule}: {r['pps']:.0f} pps, {r['dps']:.0f} drops/s")
        for s in live["top_sources"][:10]:
            print(f"  top dropped source {s['source']}: {s['packets']}")
    else:
        print("  daemon: not running")
    return 0


def cmd_detach(config: AgentConfig) -> int:
    from agent.standalone import detach

    removed = detach(config)
    print("removed: " + (", ".join(removed) or "nothing"))
    return 0


def join_token(args: argparse.Namespace, environ: dict[str, str], stdin) -> str:  # noqa: ANN001 (a text stream)
    """The join token: stdin (--token-stdin), else BULWARK_JOIN_TOKEN, else --token.
    Raises ConfigError when none is given."""
    if args.token_stdin:
        token = stdin.readline(4096).strip()
    else:
        token = environ.get(TOKEN_ENV, "").strip() or (args.token or "").strip()
    if not token:
        raise ConfigError(f"give the join token on stdin (--token-stdin) or in {TOKEN_ENV}")
    if args.token and not args.token_stdin and not environ.get(TOKEN_ENV):
        print(f"warning: --token is visible to every user in `ps`; use --token-stdin or {TOKEN_ENV}",
              file=sys.stderr)
    return token


def cmd_uninstall(config: AgentConfig) -> int:
    from agent.standalone import uninstall

    removed = uninstall(config)
    print("removed: " + (", ".join(removed) or "nothing"))
    return 0


def cmd_enroll(config: AgentConfig, hub: str, token: str, force: bool = False) -> int:
    from agent.hub_link import enroll

    doc = enroll(config, hub, token, force)
    print(f"enrolled as agent {doc['agent_id']}; credential in {config.credential_path}")
    if hub.startswith("http://"):
        print("warning: the hub is plain http (allow_insecure_http): nothing to or from it is encrypted")
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        config = config_from(args)
        if args.command == "apply":
            config = config.replace(policy=args.policy)
            if not config.iface:
                raise ConfigError("apply needs --iface")
            return cmd_apply(config)
        if args.command == "run":
            return cmd_run(config)
        if args.command == "status":
            return cmd_status(config, args.json)
        if args.command == "detach":
            return cmd_detach(config)
        if args.command == "uninstall":
            return cmd_uninstall(config)
        if args.command == "enroll":
            import os

            return cmd_enroll(config, args.hub, join_token(args, dict(os.environ), sys.stdin), args.force)
        if args.command == "check-config":
            print(f"config ok: agent {config.name}, iface {config.iface}, pins {config.pin_dir}")
            return 0
    except (ConfigError, PolicyRejected) as exc:
        print(f"bulwark agent: {exc}", file=sys.stderr)
        return 2
    except NotInstalled as exc:
        print(f"bulwark agent: {exc}", file=sys.stderr)
        return 1
    except (AgentError, OSError) as exc:
        kind = "hub" if isinstance(exc, HubError) else "error"
        print(f"bulwark agent: {kind}: {exc}", file=sys.stderr)
        return 1
    return 2
