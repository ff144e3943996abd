"""Standalone mode on a real veth pair: `apply` installs and returns, the protections
stay with no process running, `status` reads them from the pins, `detach` removes
exactly what was installed."""
from __future__ import annotations

import json

import pytest

from agent.cli import main
from tests.agent.conftest import (POLICY_A, POLICY_B, VERDICT_A, VERDICT_B, guard_verdicts,
                                  nft_rule_ports, nft_table, udp_delivered)

pytestmark = pytest.mark.kernel


def flags(lab, pin_dir, tmp_path):
    return ["--iface", lab.iface, "--netns", lab.ns, "--pin-root", pin_dir, "--name", "t",
            "--state-root", str(tmp_path / "state"), "--http-port", "0", "--xdp-mode", "native"]


def test_apply_status_detach(veth_lab, pin_dir, tmp_path, capsys):
    lab = veth_lab
    (tmp_path / "a.bw").write_text(POLICY_A)
    (tmp_path / "b.bw").write_text(POLICY_B)
    lab.add_peer_address("203.0.113.9")
    assert udp_delivered(lab, "203.0.113.9", 5000) == 20  # before: nothing filters

    assert main(["apply", str(tmp_path / "a.bw"), *flags(lab, pin_dir, tmp_path)]) == 0
    # the process that applied is gone (main returned, its fds closed): the pins enforce
    assert udp_delivered(lab, "203.0.113.9", 5000) == 0
    assert udp_delivered(lab, lab.peer_addr, 5000) == 20
    assert guard_verdicts(f"{pin_dir}/t") == VERDICT_A
    assert nft_rule_ports(lab.ns) == {23}

    capsys.readouterr()
    assert main(["status", "--json", *flags(lab, pin_dir, tmp_path)]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["attached"] and st["xdp_mode"] == "native" and st["policy"] == "agent-a"
    assert st["iface"] == lab.iface and len(st["digest"]) == 64
    dropped = sum(c["dropped"] for c in st["counters"].values())
    assert dropped >= 20 and st["daemon"] is None
    assert not st["awaiting_confirmation"] and st["reverted_from"] is None
    assert main(["status", *flags(lab, pin_dir, tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "plan: agent-a " in text and "awaiting" not in text and "daemon: not running" in text

    # a second apply replaces everything (same link, new generation, new table)
    assert main(["apply", str(tmp_path / "b.bw"), *flags(lab, pin_dir, tmp_path)]) == 0
    assert guard_verdicts(f"{pin_dir}/t") == VERDICT_B
    assert nft_rule_ports(lab.ns) == {24}
    assert udp_delivered(lab, "203.0.113.9", 5000) == 20

    # another table in the same namespace is not ours: detach must leave it alone
    from bpf import Nft, in_netns
    with in_netns(lab.ns):
        other = Nft()
    other.run([{"add": {"table": {"family": "inet", "name": "someone_else"}}}])
    assert main(["detach", *flags(lab, pin_dir, tmp_path)]) == 0
    assert nft_table(lab.ns) is None
    assert any(o.get("table", {}).get("name") == "someone_else" for o in other.list("tables"))
    other.close()
    assert udp_delivered(lab, lab.peer_addr, 7777) == 20
    from bpf import xdp_query
    with in_netns(lab.ns):
        assert xdp_query(lab.iface).mode is None
    assert main(["status", *flags(lab, pin_dir, tmp_path)]) == 1  # nothing installed any more


def test_apply_refuses_a_lockout(veth_lab, pin_dir, tmp_path, capsys):
    (tmp_path / "x.bw").write_text('policy "x"\ndefault drop\npass udp dport 53\n')
    rc = main(["apply", str(tmp_path / "x.bw"), *flags(veth_lab, pin_dir, tmp_path)])
    # with no admin prefixes configured, a default drop is the operator's business
    assert rc == 0
    rc = main(["detach", *flags(veth_lab, pin_dir, tmp_path)])
    (tmp_path / "agent.toml").write_text('admin_prefixes = ["198.51.100.0/24"]\n')
    rc = main(["apply", str(tmp_path / "x.bw"), "--config", str(tmp_path / "agent.toml"),
               *flags(veth_lab, pin_dir, tmp_path)])
    assert rc == 2
    assert "lock" in capsys.readouterr().err.lower()


def test_only_the_nft_stage_writes_the_table(veth_lab, pin_dir, make_config):
    """One writer per kernel object: the maps stage flips the guard and leaves the table
    alone; the nft stage widens it first (both Plans' drops) and installs the new one last."""
    from agent.dataplane import Dataplane
    from agent.lockout import compile_policy
    from agent.state import Desired, StateStore

    config = make_config(veth_lab, pin_dir)
    dp = Dataplane(config, StateStore(config.state_dir))
    a, b = (Desired(mode="enforce", plan=compile_policy(p, "p.bw", config), source="policy")
            for p in (POLICY_A, POLICY_B))
    try:
        dp.apply_maps(a)
        dp.attach()
        dp.apply_nft(a)
        assert nft_rule_ports(veth_lab.ns) == {23}
        assert dp.apply_maps(b) == "flip"
        assert guard_verdicts(config.pin_dir) == VERDICT_B
        assert nft_rule_ports(veth_lab.ns) == {23}      # the maps stage did not touch it
        assert dp.widen_nft(b) is True
        assert nft_rule_ports(veth_lab.ns) == {23, 24}  # as strict as either Plan
        assert dp.apply_nft(b) == "table"
        assert nft_rule_ports(veth_lab.ns) == {24}
        assert dp.widen_nft(b) is False                 # the table is b's already
    finally:
        dp.detach_program()
        dp.apply_nft(Desired(mode="deactivate"))
        dp.close()
