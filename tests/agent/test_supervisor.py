"""The supervisor restarts a crashing actor with backoff while the others run on."""
from __future__ import annotations

import random

import trio

from agent.config import AgentConfig
from agent.supervisor import ActorSpec, backoff_s, supervise
from agent.telemetry import Telemetry

CFG = AgentConfig(backoff_initial_s=1, backoff_max_s=8, backoff_reset_s=60)


async def ticker(config, *, inbox, outbox, task_status=trio.TASK_STATUS_IGNORED):
    async with inbox, outbox:
        task_status.started()
        while True:
            await trio.sleep(1)
            await outbox.send("tick")


async def crasher(config, *, inbox, outbox, starts, crashes, task_status=trio.TASK_STATUS_IGNORED):
    async with inbox, outbox:
        starts.append(trio.current_time())
        task_status.started()
        msg = await inbox.receive()
        crashes.append(trio.current_time())
        raise RuntimeError(f"boom on {msg}")


async def test_crashing_actor_restarts_and_others_run_on(autojump_clock):
    tele = Telemetry()
    tick_tx, tick_rx = trio.open_memory_channel(1000)
    cmd_tx, cmd_rx = trio.open_memory_channel(100)
    _, idle_rx = trio.open_memory_channel(0)
    starts, crashes = [], []
    specs = [ActorSpec("ticker", ticker, idle_rx, tick_tx),
             ActorSpec("crasher", crasher, cmd_rx, tick_tx, {"starts": starts, "crashes": crashes})]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: supervise(CFG, specs, tele, rng=random.Random(1),
                                                          task_status=task_status))
        for i in range(4):
            await cmd_tx.send(i)  # each message crashes it; the channel outlives every crash
            await trio.sleep(30)
        ticks = 0
        while True:
            try:
                tick_rx.receive_nowait()
                ticks += 1
            except trio.WouldBlock:
                break
        nursery.cancel_scope.cancel()
    assert tele.restarts == {"crasher": 4}
    assert len(starts) == 5
    delays = [start - crash for crash, start in zip(crashes, starts[1:])]
    for n, delay in enumerate(delays):  # 1, 2, 4, 8 s, each with jitter in [0.5, 1.5)
        assert 0.5 * 2 ** n <= delay < 1.5 * 2 ** n
    assert ticks >= 115  # the ticker never stopped: ~120 s of ticks


def test_backoff_bounds():
    rng = random.Random(0)
    cfg = AgentConfig(backoff_initial_s=0.5, backoff_max_s=30)
    for crashes in range(1, 20):
        base = min(30, 0.5 * 2 ** (crashes - 1))
        assert 0.5 * base <= backoff_s(cfg, crashes, rng) < 1.5 * base
