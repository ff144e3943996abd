"""The loader actor: keeps the guard attached to the interface (pinned link, so a stopped
agent leaves no gap) while the desired state is active, detaches it when deactivated.
Runs after the maps actor, so a first attach meets maps that already hold the Plan."""
from __future__ import annotations

import trio

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import Apply


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with inbox, outbox:
        task_status.started()
        async for msg in inbox:
            msg: Apply
            if not msg.errors:
                active = msg.desired.active

                def work():
                    with dataplane.lock:
                        if active:
                            return dataplane.attach().value
                        return "detached" if dataplane.detach_program() else "absent"
                try:
                    msg = msg.did(f"program:{await trio.to_thread.run_sync(work)}")
                except AgentError as exc:
                    msg = msg.failed("program", exc)
            await outbox.send(msg)
