"""`bulwark agent run`: the actors wired together under the supervisor.

Order of start (each waits for the one before): the pipeline (nft, loader, maps), then the
reconciler (which re-applies the persisted state at once: fail static before any hub
contact), then watchdog, sampler, the http endpoint, and in managed mode the hub link.
A graceful stop (SIGTERM/SIGINT → cancel) leaves every protection in place.
"""
from __future__ import annotations

import functools
import math
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import trio

from agent import hub_link, http, loader, maps, nft, reconciler, sampler, sd_notify, watchdog
from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.lockout import compile_policy
from agent.memory import single_arena
from agent.state import Desired, StateStore
from agent.supervisor import ActorSpec, supervise
from agent.telemetry import Telemetry


@dataclass
class Agent:
    """The running pieces, for tests to poke at."""
    config: AgentConfig
    dataplane: Dataplane
    store: StateStore
    telemetry: Telemetry
    to_reconciler: trio.MemorySendChannel
    to_watchdog: trio.MemorySendChannel
    specs: list[ActorSpec]


def build(config: AgentConfig, *, credential: dict | None = None, rng: random.Random | None = None,
          dataplane: Dataplane | None = None) -> Agent:
    store = StateStore(config.state_dir)
    dp = dataplane or Dataplane(config, store)
    tele = Telemetry()
    chan = trio.open_memory_channel
    rec_tx, rec_rx = chan(math.inf)
    prep_tx, prep_rx = chan(16)
    maps_tx, maps_rx = chan(16)
    load_tx, load_rx = chan(16)
    nft_tx, nft_rx = chan(16)
    hub_tx, hub_rx = chan(config.buffer_max_batches)
    wd_tx, wd_rx = chan(4)
    none_tx, none_rx = chan(0)
    deps = {"dataplane": dp}
    specs = [
        ActorSpec("nft", nft.run, nft_rx, rec_tx, deps),
        ActorSpec("loader", loader.run, load_rx, nft_tx, deps),
        ActorSpec("maps", maps.run, maps_rx, load_tx, deps),
        ActorSpec("nft_prepare", nft.prepare, prep_rx, maps_tx, deps),
        ActorSpec("reconciler", lambda cfg, **kw: reconciler.run(cfg, pipeline=prep_tx.clone(), **kw),
                  rec_rx, hub_tx, {"store": store, "telemetry": tele}),
        ActorSpec("watchdog", watchdog.run, wd_rx, rec_tx, deps),
        ActorSpec("sampler", sampler.run, none_rx, hub_tx, {**deps, "telemetry": tele}),
        ActorSpec("http", http.run, none_rx, none_tx, {"telemetry": tele}),
    ]
    if credential is not None:
        specs.append(ActorSpec("hub_link", hub_link.run, hub_rx, rec_tx,
                               {"store": store, "telemetry": tele, "credential": credential, "rng": rng}))
    return Agent(config, dp, store, tele, rec_tx, wd_tx, specs)


def policy_desired(config: AgentConfig) -> Desired:
    """The desired state from the policy file (standalone). Raises PolicyRejected, OSError."""
    path = Path(config.policy)
    plan = compile_policy(path.read_text(), path.name, config)
    return Desired(mode="enforce", plan=plan, source="policy")


async def run_agent(agent: Agent, *, initial: Desired | None = None,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled. `initial` (standalone's policy) is sent once everything started."""
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise, agent.config, agent.specs, agent.telemetry)
        if initial is not None:
            await agent.to_reconciler.send(initial)
        task_status.started()


async def announce_ready(agent: Agent, expect_plan: bool, poll_s: float = 0.05) -> None:
    """READY=1 to systemd once protections are in force: the first Plan applied when there is
    one to apply (a policy, or the persisted state), else as soon as every actor runs."""
    expect_plan = expect_plan or agent.store.applied_path.exists()
    while expect_plan and agent.telemetry.applied_digest is None:
        await trio.sleep(poll_s)
    digest = agent.telemetry.applied_digest
    sd_notify.notify(f"READY=1\nSTATUS=protecting {agent.config.iface} "
                     f"({'plan ' + digest[:12] if digest else 'awaiting a plan from the hub'})")


async def main(config: AgentConfig, *, initial: Desired | None, credential: dict | None) -> None:
    single_arena()  # before any worker thread allocates: see agent/memory.py
    agent = build(config, credential=credential)
    try:
        agent.dataplane.check_iface_free()  # another agent's interface: say whose, touch nothing
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(run_agent, agent, initial=initial))
            nursery.start_soon(announce_ready, agent, initial is not None)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()  # graceful: protections stay pinned
                    break
    finally:
        agent.dataplane.close()
