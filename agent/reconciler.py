"""The reconciler actor: the one place that decides what the kernel should hold.

Invariants:
- At start, before any hub contact, the persisted state (applied.json) is applied again:
  a restarted agent enforces what it enforced (fail static).
- One Apply travels the pipeline (nft.prepare → maps → loader → nft) at a time; a newer Desired that
  arrives meanwhile waits, and only the newest waiting one is applied.
- applied.json changes only after the pipeline reports success; the state it replaces
  becomes previous.json.
- A Plan from the hub without the pinned hub key's signature (agent.trust), or that the
  lockout guard refuses, is never applied; it is reported as failed. The guard refuses an
  nftables part the compiler could not have written (rules_dsl.nft_allow), or either stage
  dropping the hub's replies or admin SSH under the live lists (rules_dsl.lockout); it runs
  in a worker thread, never on the event loop's.
- After a new hub Plan is applied, the hub must confirm (a status report it accepted)
  within `confirm_window_s`, else the previous state is applied again and the reason is
  reported when the hub is back. A revert is never itself reverted, and the deployment
  it took back is not applied again until the hub names another one (no flapping
  between a Plan that cuts the hub off and its predecessor). A restart inside the window
  (unconfirmed.json) arms a whole window again, with the same state to go back to.

Transitions:
    state     message            → action
    idle      Desired            → check; send Apply; applying
    any       Desired (reverted) → ignore: held back until another deployment
    idle      Drift              → send Apply(current, repair=parts); applying
    applying  Desired            → keep as waiting (replacing an older one)
    applying  Drift              → ignore (the Apply under way rewrites)
    applying  Result ok          → persist, report, arm confirm (new hub Plan); idle
    applying  Result failed      → report failure; re-apply current if the failed one was new; idle
    any       Confirmed(digest)  → disarm confirm
    any       confirm deadline   → revert to previous; report why
"""
from __future__ import annotations

import dataclasses
import math

import trio

from agent import lockout, trust
from agent.config import AgentConfig
from agent.errors import AgentError, PolicyRejected
from agent.messages import Apply, Confirmed, Drift, Report, Result
from agent.state import Desired, StateStore
from agent.telemetry import Telemetry

RESULT_TIMEOUT_S = 30.0  # a pipeline actor that crashed mid-message lost it: retry


def report_of(current: Desired | None, **extra) -> Report:
    if current is None:
        return Report(applied_digest=None, mode="none", **extra)
    mode = {"deactivate": "deactivated"}.get(current.mode, current.mode)
    return Report(applied_digest=current.digest if current.active else None, mode=mode,
                  list_revisions=tuple(sorted((x.id or x.name, x.revision) for x in current.lists)),
                  **extra)


async def run(config: AgentConfig, *, inbox, outbox, pipeline, store: StateStore,
              telemetry: Telemetry, off_loop=trio.to_thread.run_sync,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """`off_loop` runs the CPU-bound lockout guard and the persisting of applied states
    away from the event loop's thread (a test on a virtual clock passes one that runs
    them inline)."""
    async with inbox, outbox, pipeline:
        current: Desired | None = None
        try:
            current = store.load()
        except AgentError as exc:
            telemetry.last_errors = [f"state: {exc}"]
        serial = 0
        in_flight: Apply | None = None
        in_flight_deadline = math.inf
        waiting: Desired | None = None
        confirm: tuple[Desired, float] | None = None  # (applied, unconfirmed; deadline)
        previous: Desired | None = None
        pending_revert_report: list = []  # [failed digest, reason] until reported
        held_back = current.reverted_from if current is not None else None  # (digest, deployment)

        async def start(desired: Desired, repair: frozenset = frozenset()) -> None:
            nonlocal serial, in_flight, in_flight_deadline
            serial += 1
            in_flight = Apply(desired, serial, repair)
            in_flight_deadline = trio.current_time() + RESULT_TIMEOUT_S
            await pipeline.send(in_flight)

        async def report(**extra) -> None:
            try:
                outbox.send_nowait(report_of(current, xdp_mode=telemetry.xdp_mode, **extra))
            except trio.WouldBlock:
                pass  # the hub link is behind; the next report carries the same state

        def keep_unconfirmed(applied: Desired | None) -> None:
            try:
                if applied is None:
                    store.clear_unconfirmed()
                else:
                    store.save_unconfirmed(applied, previous)
            except AgentError as exc:
                telemetry.last_errors = [str(exc)]

        try:  # a restart inside a confirm window: a whole window again, same state to go back to
            unconfirmed, back_to = store.load_unconfirmed(current)
        except AgentError as exc:
            unconfirmed, back_to = False, None
            telemetry.last_errors = [f"state: {exc}"]
        if unconfirmed:
            previous = back_to
            confirm = (current, trio.current_time() + config.confirm_window_s)

        if current is not None:
            await start(current, frozenset({"maps"}))  # fail static: re-apply before anything else
        task_status.started()

        while True:
            deadline = min(in_flight_deadline, confirm[1] if confirm else math.inf)
            msg = None
            with trio.move_on_at(deadline):
                msg = await inbox.receive()
            now = trio.current_time()
            if msg is None:
                if in_flight is not None and now >= in_flight_deadline:
                    telemetry.last_errors = ["apply: no result in time; retrying"]
                    await start(in_flight.desired, frozenset({"maps"}))
                elif confirm is not None and now >= confirm[1]:
                    taken_back = confirm[0]
                    failed = taken_back.digest
                    reason = (f"hub not reached within {config.confirm_window_s:g} s of applying "
                              f"{(failed or 'none')[:12]}: reverted")
                    telemetry.reverts.append(reason)
                    confirm = None
                    target = dataclasses.replace(previous or Desired(mode="none"), source="revert",
                                                 reverted_from=(failed, taken_back.deployment_id))
                    previous = None
                    held_back = target.reverted_from  # from now on, even before the revert is applied
                    pending_revert_report[:] = [failed, reason]
                    if in_flight is None:
                        await start(target)
                    else:
                        waiting = target
                continue
            if isinstance(msg, Confirmed):
                if confirm is not None and msg.digest == confirm[0].digest:
                    confirm = None
                    keep_unconfirmed(None)
                continue
            if isinstance(msg, Desired):
                if msg.source == "hub" and msg.active and held_back == (msg.digest, msg.deployment_id):
                    continue  # taken back and reported; the hub must name another deployment
                if msg.source == "hub" and msg.active:
                    try:
                        trust.check(msg, config)
                        await off_loop(lockout.check_plan, msg.plan, msg.list_entries(), config)
                    except PolicyRejected as exc:
                        telemetry.last_errors = [str(exc)]
                        await report(failed_digest=msg.digest, errors=(str(exc),))
                        continue
                    held_back = None  # the hub named another deployment
                if in_flight is None:
                    await start(msg)
                else:
                    waiting = msg
                continue
            if isinstance(msg, Drift):
                telemetry.drift = list(msg.reasons)
                if in_flight is None and current is not None:
                    parts = frozenset(r.split(":")[0] for r in msg.reasons)
                    telemetry.repairs += 1
                    telemetry.m_repairs.inc()
                    await start(current, parts)
                    await report(drift=msg.reasons)
                continue
            if isinstance(msg, Result):
                done = msg.apply
                if in_flight is None or done.serial != in_flight.serial:
                    continue  # a stale result (after a timeout retry)
                in_flight, in_flight_deadline = None, math.inf
                if done.errors:
                    telemetry.last_errors = list(done.errors)
                    if current is None or done.desired != current:
                        await report(failed_digest=done.desired.digest, errors=done.errors)
                        if current is not None:
                            await start(current, frozenset({"maps"}))
                    else:
                        await report(errors=done.errors)
                else:
                    old = current
                    new_plan = old is None or old.digest != done.desired.digest or old.mode != done.desired.mode
                    try:  # a million-entry list is megabytes of JSON and two fsyncs: off the loop
                        await off_loop(store.save, done.desired)
                    except AgentError as exc:
                        telemetry.last_errors = [str(exc)]
                    current = done.desired
                    telemetry.applied_digest, telemetry.mode = current.digest, current.mode
                    program = done.program_state()
                    if program is not None:
                        telemetry.xdp_mode = program if program in ("native", "generic") else None
                    telemetry.m_applied.set_to_current_time()
                    if not done.repair:
                        telemetry.drift = []
                    if done.desired.source == "hub" and new_plan:
                        previous = old
                        confirm = (current, trio.current_time() + config.confirm_window_s)
                        keep_unconfirmed(current)
                    elif confirm is None:
                        keep_unconfirmed(None)  # confirmed, or reverted: nothing awaits the hub
                    if pending_revert_report:
                        failed, reason = pending_revert_report
                        pending_revert_report.clear()
                        await report(failed_digest=failed, errors=(reason,))
                    else:
                        await report()
                if waiting is not None and in_flight is None:
                    nxt, waiting = waiting, None
                    await start(nxt)
