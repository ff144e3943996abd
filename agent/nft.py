"""The nft actor: the one writer of exactly one nftables table, `inet bulwark`. It
replaces it in one transaction (the Plan's batch deletes and re-adds it) — in monitor
mode a table that counts what it would drop and drops nothing — or removes it when
deactivated. Never lists, edits or deletes any other table.

It stands at both ends of the pipeline, as two tasks of this module:

    reconciler ─► prepare (widen) ─► maps ─► loader ─► run (the new table) ─Result─► reconciler

`prepare` installs, before the XDP flip, a table that drops what the live table or the new
one drops, so no moment is looser than both Plans; `run` installs the new table last and
hands the finished message back to the reconciler as a Result."""
from __future__ import annotations

import trio

from agent import stage
from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.messages import Result


async def prepare(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
                  task_status=trio.TASK_STATUS_IGNORED) -> None:
    await stage.run(inbox=inbox, outbox=outbox, dataplane=dataplane, part="nft", task_status=task_status,
                    when=lambda msg: msg.desired.active,
                    step=lambda msg: "widened" if dataplane.widen_nft(msg.desired) else None)


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    await stage.run(inbox=inbox, outbox=outbox, dataplane=dataplane, part="nft", task_status=task_status,
                    step=lambda msg: dataplane.apply_nft(msg.desired, repair="nft" in msg.repair), send=Result)
