"""Signed Plans on the agent: only a state signed by the pinned hub key, for this agent,
this deployment and this mode, is applied; any other is refused, reported as failed, and
what the agent enforces stays."""
from __future__ import annotations

import dataclasses
import json
import os
import stat

import pytest
import trio

from agent import trust
from agent.config import AgentConfig
from agent.errors import StateError
from agent.state import Desired
from tests.agent import signing
from tests.agent.test_reconciler import PLAN_A, PLAN_B, Harness, hub


@pytest.fixture
def config(tmp_path):
    cfg = AgentConfig(state_root=str(tmp_path))
    signing.pin(cfg)
    return cfg


def state(**kw) -> Desired:
    return Desired(**{"mode": "enforce", "plan": PLAN_B, "source": "hub", "deployment_id": "d1", **kw})


def test_signed_state_passes_and_pin_is_private(config):
    trust.check(signing.signed(state()), config)
    trust.check(signing.signed(state(mode="monitor")), config)
    assert stat.S_IMODE(os.stat(config.state_dir / trust.PIN_FILE).st_mode) == 0o600


@pytest.mark.parametrize("forge, why", [
    (lambda d: d, "unsigned"),
    (lambda d: signing.signed(d, key=signing.OTHER_KEY), "not signed by the pinned hub key"),
    (lambda d: signing.signed(d, agent_id="11111111-2222-3333-4444-555555555555"), "not signed"),
    (lambda d: signing.signed(d, deployment_id="d0"), "not signed"),       # replayed from another deployment
    (lambda d: signing.signed(d, mode="monitor"), "not signed"),           # a monitor signature, enforce asked
    (lambda d: dataclasses.replace(signing.signed(state(plan=PLAN_A)), plan=PLAN_B), "not signed"),  # Plan swapped
    (lambda d: dataclasses.replace(d, signature="!" * 88), "not base64"),
    (lambda d: dataclasses.replace(d, signature="QUFB"), "expected 64 bytes"),
    (lambda d: dataclasses.replace(d, signature=["not", "text"]), "base64 text"),
    (lambda d: dataclasses.replace(d, signature="A" * 100_000), "base64 text"),
])
def test_forged_states_are_refused(config, forge, why):
    with pytest.raises(trust.PlanUntrusted, match=why):
        trust.check(forge(state()), config)


def test_no_pin_or_a_bad_pin_refuses(tmp_path):
    cfg = AgentConfig(state_root=str(tmp_path))
    with pytest.raises(trust.PlanUntrusted, match="enrol again"):
        trust.check(signing.signed(state()), cfg)
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / trust.PIN_FILE).write_text(json.dumps({"agent_id": signing.AGENT_ID}))
    with pytest.raises(trust.PlanUntrusted, match="not a pinned hub key"):
        trust.check(signing.signed(state()), cfg)
    (cfg.state_dir / trust.PIN_FILE).write_text(json.dumps({"agent_id": signing.AGENT_ID, "plan_public_key": "QUFB"}))
    with pytest.raises(trust.PlanUntrusted, match="32 bytes"):
        trust.check(signing.signed(state()), cfg)


def test_enrolment_answer_without_a_key_is_refused(tmp_path):
    cfg = AgentConfig(state_root=str(tmp_path))
    for bad in (None, "", "QUFB", 5):
        with pytest.raises(StateError, match="plan_public_key"):
            trust.save_pin(cfg, signing.AGENT_ID, bad)


async def test_reconciler_refuses_reports_and_keeps_what_it_enforces(tmp_path, autojump_clock):
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await h.start(nursery)
        await h.in_tx.send(hub(PLAN_A))
        await trio.sleep(1)
        h.reports()
        forged = dataclasses.replace(hub(PLAN_B, deployment_id="e"), signature=signing.signature(
            hub(PLAN_B, deployment_id="e"), key=signing.OTHER_KEY))
        await h.in_tx.send(forged)
        await h.in_tx.send(dataclasses.replace(hub(PLAN_B, deployment_id="f"), signature=None))
        await trio.sleep(1)
        assert [a.desired.digest for a in h.applied] == [PLAN_A.digest]
        assert h.store.load().digest == PLAN_A.digest
        reports = h.reports()
        assert [(r.failed_digest, r.applied_digest) for r in reports] == [(PLAN_B.digest, PLAN_A.digest)] * 2
        assert "not signed by the pinned hub key" in reports[0].errors[0]
        assert "unsigned" in reports[1].errors[0]
        await h.in_tx.send(hub(PLAN_B, deployment_id="g"))  # signed properly: applied
        await trio.sleep(1)
        assert h.store.load().digest == PLAN_B.digest
        nursery.cancel_scope.cancel()
