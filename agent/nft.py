"""The nft actor: owns exactly one nftables table, `inet bulwark`, and replaces it in one
transaction (the Plan's batch deletes and re-adds it) — in monitor mode a table that
counts what it would drop and drops nothing — or removes it when deactivated. Never
lists, edits or deletes any other table. Last in the pipeline: it hands the finished
message back to the reconciler as a Result."""
from __future__ import annotations

import trio

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import Apply, Result


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
