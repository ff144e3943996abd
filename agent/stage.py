"""One stage of the apply pipeline (nft.prepare ─► maps ─► loader ─► nft), written once.

Each stage takes an `Apply` from its inbox and, unless an earlier stage failed (or
`when` says the state does not concern it), does its one dataplane step in a worker
thread under the dataplane's lock (kernel work never runs on trio's thread), records
what it did as `part:what` — or the `AgentError` as this part's failure, so the previous
contents keep enforcing — and passes the message on. The actors differ only in those
arguments; the loop, the lock and the error rule are here.
"""
from __future__ import annotations

from collections.abc import Callable

import trio

from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import Apply


async def run(*, inbox, outbox, dataplane: Dataplane, part: str, step: Callable[[Apply], str | None],
              when: Callable[[Apply], bool] = lambda msg: True, send: Callable[[Apply], object] = lambda msg: msg,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """`step(msg)` runs under the lock and returns what it did (None: nothing worth
    recording); `send` wraps the message for the next actor."""
    async with inbox, outbox:
        task_status.started()
        async for msg in inbox:
            msg: Apply
            if when(msg) and not msg.errors:
                def work(msg: Apply = msg) -> str | None:
                    with dataplane.lock:
                        return step(msg)
                try:
                    what = await trio.to_thread.run_sync(work)
                    if what is not None:
                        msg = msg.did(f"{part}:{what}")
                except AgentError as exc:
                    msg = msg.failed(part, exc)
            await outbox.send(send(msg))
