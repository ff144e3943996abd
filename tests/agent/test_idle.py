"""An idle agent's watchdog tick is cheap: with nothing changed it enters no namespace
and lists no nftables table (it reads its link's info and the namespace's nftables
generation), yet a table changed by hand or a detached program is still seen."""
from __future__ import annotations

import contextlib

import pytest

from tests.agent.conftest import POLICY_A

pytestmark = pytest.mark.kernel


def test_a_quiet_watchdog_tick_lists_nothing_and_enters_no_namespace(veth_lab, pin_dir, make_config, monkeypatch):
    import agent.dataplane as dataplane
    from agent.lockout import compile_policy
    from agent.state import Desired, StateStore
    from bpf import Link, Nft, in_netns

    config = make_config(veth_lab, pin_dir)
    desired = Desired(mode="enforce", plan=compile_policy(POLICY_A, "p.bw", config), source="policy")
    dp = dataplane.Dataplane(config, StateStore(config.state_dir))
    try:
        dp.apply_maps(desired)
        dp.attach()
        dp.apply_nft(desired)
        assert dp.drift() == []  # the first look lists the table once and notes the generation
        listings, entered = [], []
        real_nft, real_ns = dataplane._nft, dp.ns

        def counted_nft():
            listings.append(1)
            return real_nft()

        def counted_ns():
            entered.append(1)
            return real_ns()
        monkeypatch.setattr(dataplane, "_nft", counted_nft)
        monkeypatch.setattr(dp, "ns", counted_ns)
        for _ in range(5):
            assert dp.drift() == []
        assert listings == [] and entered == []

        with in_netns(veth_lab.ns):
            nft = Nft()
        with contextlib.closing(nft):
            nft.run("flush table inet bulwark")
        assert dp.drift() == ["nft: table inet bulwark was changed"]
        dp.apply_nft(desired, repair=True)
        assert dp.drift() == []

        with in_netns(veth_lab.ns):
            Link.open_pinned(config.pin_dir / "link").detach()
        assert [d.split(":")[0] for d in dp.drift()] == ["program"]
    finally:
        dp.remove_all()
        dp.close()
