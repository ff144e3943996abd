"""The maps actor: makes the guard's BPF maps hold each desired state it is handed
(a whole Plan by the generation flip, list deltas entry by entry), then passes the
message on to the loader with what it did. A failure is recorded on the message, not
raised: the previous contents keep enforcing."""
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
            if msg.desired.active and not msg.errors:
                def work():
                    with dataplane.lock:
                        return dataplane.apply_maps(msg.desired, repair="maps" in msg.repair)
                try:
                    how = await trio.to_thread.run_sync(work)
                    msg = msg.did(f"maps:{how}")
                except AgentError as exc:
                    msg = msg.failed("maps", exc)
            await outbox.send(msg)
