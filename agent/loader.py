"""The loader actor: keeps the guard attached to the interface (pinned link, so a stopped
agent leaves no gap) while the desired state is active, detaches it when deactivated.
Runs after the maps actor, so a first attach meets maps that already hold the Plan."""
from __future__ import annotations

import trio

from agent import stage
from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.messages import Apply


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    def step(msg: Apply) -> str:
        if msg.desired.active:
            return dataplane.attach().value
        return "detached" if dataplane.detach_program() else "absent"

    await stage.run(inbox=inbox, outbox=outbox, dataplane=dataplane, part="program", task_status=task_status,
                    step=step)
