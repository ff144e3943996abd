"""The watchdog actor: every `watchdog_interval_s` it compares the kernel with what the
agent installed (program attached, rule tables and address maps present, our nftables
table unchanged) and reports drift to the reconciler, which repairs it. With the
default 0.5 s interval, drift is repaired well within 2 s."""
from __future__ import annotations

import trio

from agent.config import AgentConfig
from agent.dataplane import Dataplane
from agent.errors import AgentError
from agent.messages import Drift


async def run(config: AgentConfig, *, inbox, outbox, dataplane: Dataplane,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with inbox, outbox:
        task_status.started()
        paused = False
        while True:
            deadline = trio.current_time() + config.watchdog_interval_s
            with trio.move_on_at(deadline):
                try:
                    while True:  # "pause" / "resume", from tests and the CLI
                        paused = await inbox.receive() == "pause"
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    await trio.sleep_until(deadline)
            if paused:
                continue

            def look():
                with dataplane.lock:
                    return dataplane.drift()
            try:
                found = await trio.to_thread.run_sync(look)
            except AgentError as exc:
                found = [f"watchdog: {exc}"]
            if found:
                await outbox.send(Drift(tuple(found)))
