"""The maps actor: makes the guard's BPF maps hold each desired state it is handed
(a whole Plan by the generation flip, list deltas entry by entry), then passes the
message on to the loader with what it did. A failure is recorded on the message, not
raised: the previous contents keep enforcing."""
from __future__ import annotations

import trio

from agent import stage
from agent.config import AgentConfig
from agent.dataplane import Dataplane


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    await stage.run(inbox=inbox, outbox=outbox, dataplane=dataplane, part="maps", task_status=task_status,
                    when=lambda msg: msg.desired.active,
                    step=lambda msg: dataplane.apply_maps(msg.desired, repair="maps" in msg.repair))
