"""The supervisor: starts the actors in dependency order and keeps each one running.

Invariants:
- Actors start with `nursery.start`, in order; each is started once its predecessors
  said started (or, if one fails at its first start, once that failure was recorded —
  a broken actor does not keep the others from protecting).
- A crashed actor is restarted after a backoff that doubles per consecutive crash
  (`backoff_initial_s` … `backoff_max_s`) with ±50 % jitter, reset once it stayed up for
  `backoff_reset_s`. Its channels outlive it: each run gets clones, so the others keep
  sending and receiving meanwhile.
- Nothing here detaches anything: protections are pinned, a crash or a graceful stop
  (cancellation) leaves the kernel as it was.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from agent.config import AgentConfig
from agent.telemetry import Telemetry

log = logging.getLogger("bulwark.agent")


@dataclass
class ActorSpec:
    name: str
    run: Callable[..., Any]
    inbox: Any  # receive channel (the supervisor keeps the original, the actor gets clones)
    outbox: Any  # send channel
    deps: dict[str, Any] = field(default_factory=dict)


def backoff_s(config: AgentConfig, crashes: int, rng: random.Random) -> float:
    base = min(config.backoff_max_s, config.backoff_initial_s * 2 ** max(0, crashes - 1))
    return base * rng.uniform(0.5, 1.5)


async def keep_running(config: AgentConfig, spec: ActorSpec, telemetry: Telemetry,
                       rng: random.Random, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run one actor forever: restart it after a crash, return when it returns."""
    announced = False
    crashes = 0
    while True:
        began = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: spec.run(
                    config, inbox=spec.inbox.clone(), outbox=spec.outbox.clone(),
                    task_status=task_status, **spec.deps))
                if not announced:
                    announced = True
                    task_status.started()
            return
        except Exception as exc:  # noqa: BLE001 — any crash of one actor is survived
            if trio.current_time() - began >= config.backoff_reset_s:
                crashes = 0
            crashes += 1
            telemetry.restarts[spec.name] = telemetry.restarts.get(spec.name, 0) + 1
            telemetry.m_restarts.labels(spec.name).inc()
            telemetry.last_errors = [f"{spec.name} crashed: {exc!r}"]
            log.warning("actor %s crashed (%r); restarting", spec.name, exc)
            if not announced:
                announced = True
                task_status.started()
            await trio.sleep(backoff_s(config, crashes, rng))


async def supervise(config: AgentConfig, specs: list[ActorSpec], telemetry: Telemetry, *,
                    rng: random.Random | None = None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    rng = rng or random.Random()
    async with trio.open_nursery() as nursery:
        for spec in specs:
            await nursery.start(keep_running, config, spec, telemetry, rng)
        task_status.started()
