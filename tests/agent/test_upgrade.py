"""An upgraded agent finds the pinned link running its predecessor's build: it swaps its
own program in through that link (no detach, the maps stay), and only when the code
differs (program tags)."""
from __future__ import annotations

import pytest

from tests.agent.conftest import POLICY_A, VERDICT_A, guard_verdicts
from tests.guard.conftest import guard_build

pytestmark = pytest.mark.kernel


def running_tag(dp) -> str:
    from bpf import Program, in_netns, xdp_query

    with in_netns(dp.config.netns):
        prog_id = xdp_query(dp.config.iface).prog_id
    with Program.open_id(prog_id) as prog:
        return prog.tag


def test_restart_with_another_build_upgrades_through_the_link(veth_lab, pin_dir, make_config, tmp_path):
    from agent.dataplane import Dataplane
    from agent.lockout import compile_policy
    from agent.state import Desired, StateStore

    old_build, new_build = guard_build(tmp_path, 1), guard_build(tmp_path, 2)
    config = make_config(veth_lab, pin_dir)
    desired = Desired(mode="enforce", plan=compile_policy(POLICY_A, "p.bw", config), source="policy")
    first = Dataplane(config, StateStore(config.state_dir), object_path=old_build)
    first.apply_maps(desired)
    first.attach()
    old_tag, link_id = running_tag(first), first.link.prog_id
    first.close()  # the agent exits; the pinned link keeps the old build attached

    same = Dataplane(config, StateStore(config.state_dir), object_path=old_build)
    try:
        same.attach()
        assert same.link.prog_id == link_id  # same tag: the running program stays
    finally:
        same.close()

    second = Dataplane(config, StateStore(config.state_dir), object_path=new_build)
    try:
        second.attach()
        assert running_tag(second) == second.guard.program.tag != old_tag
        assert second.link.prog_id == second.guard.program.id
        assert guard_verdicts(config.pin_dir) == VERDICT_A  # the maps were never touched
        assert second.drift() == []
    finally:
        second.remove_all()
