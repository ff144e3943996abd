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

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import Apply, Result


async def prepare(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
                  task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with inbox, outbox:
        task_status.started()
        async for msg in inbox:
            msg: Apply
            if msg.desired.active and not msg.errors:
                def work():
                    with dataplane.lock:
                        return dataplane.widen_nft(msg.desired)
                try:
                    if await trio.to_thread.run_sync(work):
                        msg = msg.did("nft:widened")
                except AgentError as exc:
                    msg = msg.failed("nft", exc)
            await outbox.send(msg)


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with inbox, outbox:
        task_status.started()
        async for msg in inbox:
            msg: Apply
            if not msg.errors:
                def work():
                    with dataplane.lock:
                        return dataplane.apply_nft(msg.desired, repair="nft" in msg.repair)
                try:
                    msg = msg.did(f"nft:{await trio.to_thread.run_sync(work)}")
                except AgentError as exc:
                    msg = msg.failed("nft", exc)
            await outbox.send(Result(msg))
