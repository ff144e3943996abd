"""The kernel side of the agent, synchronous: the guard's maps, its pinned XDP link and
the `inet bulwark` nftables table, for one agent (one pin directory, one interface).

Everything here blocks and may enter a network namespace (per thread), so async code
calls it through `trio.to_thread.run_sync`, one call at a time (`Dataplane.lock`).
Every BpfError/OSError that crosses out of here becomes a DataplaneError (raised from
it); a Plan the guard cannot hold becomes PolicyRejected.

Pins, under `config.pin_dir`: the guard's maps by name and `link` (the XDP bpf_link).
What was installed (interface, namespace, mode) is recorded in the state directory's
`installed.json` so that `status` and `detach` work with no daemon running.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.errors import ConfigError, DataplaneError, NotInstalled, PolicyRejected
from agent.memory import release_memory
from agent.nft_docs import both_tables, from_listing
from agent.pin_root import ensure_pin_root
from agent.state import DELTA_MAX, Desired, StateStore
from bpf import Link, NftError, XdpMode, in_netns, unpin, xdp_query
from bpf.errors import BpfError, MapKeyNotFound, NoSpace
from bpf.guard import OBJECT_PATH, PINNED_MAPS, Guard, GuardSample, PinnedView
from bpf.guard_plan import spec_from_plan
from bpf.guard_tables import GuardSpecError
from rules_dsl.nft import monitor_nft

TABLE = {"family": "inet", "name": "bulwark"}
LINK_PIN = "link"


def kernel(fn):
    """Translate the world's failures at this boundary."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (PolicyRejected, DataplaneError, ConfigError):
            raise
        except GuardSpecError as exc:
            raise PolicyRejected("the guard cannot hold this Plan", (str(exc),)) from exc
        except (BpfError, OSError) as exc:
            raise DataplaneError(f"{fn.__name__}: {exc}") from exc
    return wrapper


def normalized(objs: Any) -> Any:
    """An nft listing without what changes by itself (handles, counters, dynamic set elements)."""
    if isinstance(objs, list):
        return [normalized(o) for o in objs if not (isinstance(o, dict) and "metainfo" in o)]
    if isinstance(objs, dict):
        return {k: normalized(v) for k, v in objs.items()
                if k not in ("handle", "elem", "packets", "bytes")}
    return objs


class Dataplane:
    def __init__(self, config: AgentConfig, store: StateStore | None = None, *,
                 object_path: str | Path = OBJECT_PATH):
        self.config = config
        self.object_path = object_path  # the guard build this agent runs
        self.store = store or StateStore(config.state_dir)
        self.lock = threading.Lock()
        self.guard: Guard | None = None
        self.link: Link | None = None
        self.mode: XdpMode | None = None
        self.fallback_reason: str | None = None
        self.maps_desired: Desired | None = None  # what our maps were last made to hold
        self._maps_check: tuple[int, int] | None = None  # live config (words, fields) then
        self.nft_expected: Any = None  # normalized listing of our table, None: no table
        self._nft_doc: Any = None  # the document that table was installed from
        self.program_wanted = False
        self._ring = None
        self._nft_gen = None  # RulesetGeneration of the interface's namespace, opened there once
        self._nft_gen_seen: int | None = None  # the generation at which our table was last seen intact

    # ---- helpers ----
    def ns(self):
        return in_netns(self.config.netns)

    @property
    def pin_dir(self) -> Path:
        return self.config.pin_dir

    @kernel
    def open_guard(self, *, fresh: bool = False) -> Guard:
        """The guard, reusing our pinned maps (so the attached program sees what we write)."""
        if fresh and self.guard is not None:
            self.close_guard()
        if self.guard is None:
            ensure_pin_root(self.config.pin_root)
            self.pin_dir.mkdir(parents=True, exist_ok=True)
            guard = Guard(object_path=self.object_path, pinned=self.pin_dir)
            guard.pin_maps(self.pin_dir)
            self.guard = guard
        return self.guard

    def close_guard(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self.guard is not None:
            self.guard.close()
            self.guard = None

    def close(self) -> None:
        self.close_guard()
        if self._nft_gen is not None:
            self._nft_gen.close()
            self._nft_gen = None
        if self.link is not None:
            self.link.close()
            self.link = None

    # ---- maps ----
    @kernel
    def apply_maps(self, desired: Desired, *, repair: bool = False) -> str:
        """Make the maps enforce desired (atomically: idle generation, then the flip).

        A change of list contents only, with deltas, edits the live maps entry by entry.
        Returns how it was applied ("flip", "deltas", "none")."""
        if not desired.active:
            return "none"
        guard = self.open_guard(fresh=repair)
        prev = self.maps_desired
        lists = desired.list_entries()
        size = sum(len(a) + len(r) for _, a, r in desired.deltas)
        if (not repair and prev is not None and desired.deltas and size <= DELTA_MAX
                and prev.plan == desired.plan and prev.mode == desired.mode
                and {x.name for x in prev.lists} == set(lists)):
            try:
                for name, added, removed in desired.deltas:
                    for s in desired.plan.xdp.sets:
                        if name in s.lists:
                            guard.update_set(s.id, added=added, removed=removed)
                self.maps_desired = desired
                return "deltas"
            except NoSpace:
                pass  # the live inner map is full: the flip below builds bigger ones
        try:
            spec = spec_from_plan(desired.plan, lists)
        except ValueError as exc:
            if isinstance(exc, GuardSpecError):
                raise
            raise PolicyRejected("a list entry is not an address", (str(exc),)) from exc
        if desired.mode == "monitor":
            spec = dataclasses.replace(spec, monitor=True)
        guard.apply(spec, content_id=(desired.digest, desired.content_id()))
        guard.spec = None  # the maps hold it now; a million-entry spec is ~60 MB we need not keep
        del spec
        release_memory()
        gen = guard.generation
        cfg = guard.config[gen]
        self._maps_check = (cfg.words, cfg.fields)
        self.maps_desired = desired
        return "flip"

    # ---- program ----
    @kernel
    def attach(self) -> XdpMode:
        """Attach the guard to the interface, or keep the pinned link that already holds it;
        when that link runs other code than our build (program tags differ: the agent was
        upgraded), swap our program in through the link, over the one found there, never
        detaching, so every packet meets one of the two (the maps are shared pins)."""
        if not self.config.iface:
            raise DataplaneError("no interface configured (iface)")
        guard = self.open_guard()
        path = self.pin_dir / LINK_PIN
        self.program_wanted = True
        with self.ns():
            if self.link is None and path.exists():
                self.link = Link.open_pinned(path)
            if self.link is not None:
                seen = xdp_query(self.config.iface)
                if self.link.prog_id and seen.prog_id == self.link.prog_id:
                    self.link.upgrade(guard.program)
                    self.mode = seen.mode
                    self._record()
                    return seen.mode
                self.link.close()  # defunct: detached by someone, or the interface was remade
                self.link = None
                unpin(path)
            self._refuse_foreign()
            link = Link.attach_xdp(guard.program, self.config.iface, XdpMode(self.config.xdp_mode))
            link.pin(path)
        self.link, self.mode, self.fallback_reason = link, link.mode, link.fallback_reason
        self._record()
        return link.mode

    def check_iface_free(self) -> None:
        """Raise DataplaneError naming who holds the interface when an XDP program other
        than the one our pinned link holds is attached there (another agent's, found by
        its pinned link under the pin root, or anyone's): before touching anything. An
        interface or namespace not there (yet) is for `attach` to report or wait out."""
        if not self.config.iface:
            return
        try:
            with self.ns():
                self._refuse_foreign()
        except (BpfError, OSError):
            return

    def _refuse_foreign(self) -> None:
        """The check of `check_iface_free`, in the interface's namespace."""
        seen = xdp_query(self.config.iface)
        if not seen.prog_id:
            return
        ours = self.link
        if ours is None and (self.pin_dir / LINK_PIN).exists():
            with contextlib.suppress(BpfError), Link.open_pinned(self.pin_dir / LINK_PIN) as link:
                if link.prog_id == seen.prog_id:
                    return
        elif ours is not None and ours.prog_id == seen.prog_id:
            return
        owner = _link_owner(Path(self.config.pin_root), seen.prog_id)
        who = f"agent {owner!r} (pins {Path(self.config.pin_root) / owner})" if owner else \
            f"another XDP program (id {seen.prog_id})"
        raise DataplaneError(f"{self.config.iface} is already guarded by {who}: detach that one first, "
                             "or give this agent another interface")

    def _record(self) -> None:
        self.store.save_installed({"iface": self.config.iface, "netns": self.config.netns,
                                   "xdp_mode": self.mode.value if self.mode else None,
                                   "fallback_reason": self.fallback_reason,
                                   "pin_dir": str(self.pin_dir)})

    @kernel
    def detach_program(self) -> bool:
        """Detach our program (and unpin its link). Returns whether one was attached."""
        self.program_wanted = False
        path = self.pin_dir / LINK_PIN
        with self.ns():
            if self.link is None and path.exists():
                self.link = Link.open_pinned(path)
            if self.link is None:
                return False
            attached = bool(self.link.prog_id)
            if attached:
                self.link.detach()
            self.link.close()
            self.link = None
            unpin(path)
        self.mode = None
        return attached

    # ---- nftables ----
    @kernel
    def apply_nft(self, desired: Desired, *, repair: bool = False) -> str:
        """Replace our table with the Plan's, in one transaction, or remove it. In monitor
        mode the table is the Plan's projected to count only (`monitor_nft`), as the
        guard's maps get the monitor flag. A table this process installed from the same
        document and still intact is kept (not repair): a list delta or a Plan that changes
        only its XDP part neither resets rate-limit and connection-count state nor opens a
        window between the two parts. Returns "table" (replaced), "kept" or "none".
        Touches no other table."""
        doc, wanted = _table_doc(desired)
        with self.ns():
            with contextlib.closing(_nft()) as nft:
                if wanted:
                    if not repair and doc == self._nft_doc and self._nft_intact(nft):
                        return "kept"
                    nft.run(doc)  # the compiler emits add+delete+add of the table: one batch
                    self.nft_expected = normalized(nft.list("table inet bulwark"))
                    self._nft_doc = doc
                    self._nft_gen_seen = None
                else:
                    nft.run([{"add": {"table": TABLE}}, {"delete": {"table": TABLE}}])
                    self.nft_expected = self._nft_doc = None
        return "table" if wanted else "none"

    @kernel
    def widen_nft(self, desired: Desired) -> bool:
        """Before the maps take a Plan that comes with a new table: a table that drops what
        the live one or the new one drops (`agent/nft_docs.py`), so the gap until apply_nft
        installs the new table is at least as strict as one of the two Plans. A new table
        means a new Plan or mode, so the maps will flip. Returns whether it widened."""
        doc, wanted = _table_doc(desired)
        if not wanted or doc == self._nft_doc:
            return False  # no table to come, or apply_nft keeps the one there
        with self.ns(), contextlib.closing(_nft()) as nft:
            try:
                live = nft.list("table inet bulwark")
            except NftError:
                return False  # no table: nothing to be looser than
            both = both_tables(from_listing(live), doc)
            nft.run(both)
            self.nft_expected = normalized(nft.list("table inet bulwark"))
            self._nft_doc = both  # not the new document: apply_nft installs that
            self._nft_gen_seen = None
        return True

    def _nft_intact(self, nft) -> bool:
        if self.nft_expected is None:
            return False
        try:
            return normalized(nft.list("table inet bulwark")) == self.nft_expected
        except NftError:
            return False

    @kernel
    def remove_nft(self) -> None:
        with self.ns(), contextlib.closing(_nft()) as nft:
            nft.run([{"add": {"table": TABLE}}, {"delete": {"table": TABLE}}])
        self.nft_expected = self._nft_doc = None

    # ---- drift ----
    @kernel
    def drift(self) -> list[str]:
        """What differs from what we installed: ["program", "maps", "nft"] with reasons."""
        found = []
        if self.program_wanted:
            # Our link's own info, no namespace entered: the kernel lets no one replace a
            # link's program but through the link, and a detached link (by hand, or the
            # interface gone) shows ifindex 0.
            ok = False
            if self.link is not None:
                try:
                    prog_id, ifindex = self.link._info()
                    ok = bool(prog_id and ifindex)
                except BpfError:
                    ok = False
            if not ok:
                found.append("program: the guard is no longer attached to " + str(self.config.iface))
        if self.maps_desired is not None and self.guard is not None:
            guard = self.guard
            gen = guard.generation
            cfg = guard.config[gen]
            reason = None
            if self._maps_check is not None and (cfg.words, cfg.fields) != self._maps_check:
                reason = "maps: rule tables changed"
            else:
                for table, outer in guard.outer.items():
                    try:
                        outer.get(gen)
                    except MapKeyNotFound:
                        reason = f"maps: address table {table} emptied"
                        break
            if reason:
                found.append(reason)
        if self.nft_expected is not None:
            gen = self._nft_generation()
            if gen is not None and gen == self._nft_gen_seen:
                return found  # no nftables transaction in the namespace since we saw it intact
            with self.ns(), contextlib.closing(_nft()) as nft:
                try:
                    now = normalized(nft.list("table inet bulwark"))
                except NftError:
                    now = None
            if now is None:
                found.append("nft: table inet bulwark is gone")
            elif now != self.nft_expected:
                found.append("nft: table inet bulwark was changed")
            else:
                self._nft_gen_seen = gen  # read before the listing: a change after it moves it on
        return found

    def _nft_generation(self) -> int | None:
        """The namespace's nftables generation, None when it cannot be read (then the
        watchdog lists the table every time, as before)."""
        from bpf.nft_gen import RulesetGeneration

        try:
            if self._nft_gen is None:
                with self.ns():
                    self._nft_gen = RulesetGeneration()
            return self._nft_gen.read()
        except OSError:
            if self._nft_gen is not None:
                self._nft_gen.close()
                self._nft_gen = None
            return None

    # ---- reading ----
    @kernel
    def counters(self):
        return self.open_guard().counters()

    @kernel
    def drain_samples(self, limit: int = 100_000) -> list[GuardSample]:
        from bpf.ringbuf import RingBuffer

        if self._ring is None:
            self._ring = RingBuffer(self.open_guard().object.map("g_samples"))
        return [GuardSample.from_buffer_copy(r) for r in self._ring.drain(limit)]

    # ---- removing everything ----
    @kernel
    def remove_all(self) -> list[str]:
        """Detach, drop the table, unpin our maps, forget the state. Returns what was removed."""
        removed = []
        if self.detach_program():
            removed.append("program")
        self.close_guard()
        with self.ns(), contextlib.closing(_nft()) as nft:
            existing = [o for o in nft.list("tables") if "table" in o]
            if any(t["table"]["family"] == "inet" and t["table"]["name"] == "bulwark" for t in existing):
                nft.run([{"delete": {"table": TABLE}}])
                removed.append("nft table inet bulwark")
        self.nft_expected = self._nft_doc = None
        if self.pin_dir.exists():
            for name in (*PINNED_MAPS, LINK_PIN):
                if (self.pin_dir / name).exists():
                    unpin(self.pin_dir / name)
            with contextlib.suppress(OSError):
                self.pin_dir.rmdir()
            removed.append("maps")
        self.maps_desired = None
        self.store.clear()
        return removed


def _link_owner(pin_root: Path, prog_id: int) -> str | None:
    """The agent (pin directory name under pin_root) whose pinned link holds prog_id."""
    try:
        dirs = sorted(d for d in pin_root.iterdir() if (d / LINK_PIN).exists())
    except OSError:
        return None
    for d in dirs:
        with contextlib.suppress(BpfError), Link.open_pinned(d / LINK_PIN) as link:
            if link.prog_id == prog_id:
                return d.name
    return None


def _nft():
    from bpf import Nft

    return Nft()


def _table_doc(desired: Desired) -> tuple[dict, bool]:
    """The table document for desired (monitor mode: projected to count only), and
    whether a table is wanted at all."""
    doc = desired.plan.nft if desired.plan is not None else {"nftables": []}
    if desired.mode == "monitor":
        doc = monitor_nft(doc)
    cmds = [c for c in doc.get("nftables", []) if "metainfo" not in c]
    return doc, desired.active and len(cmds) > 1


# ---- reading pinned state with no daemon and no program load ----
@kernel
def read_pinned(config: AgentConfig) -> dict[str, Any]:
    """Interface, XDP mode and per-rule counters from the pins alone.

    Raises NotInstalled when nothing is pinned for this agent."""
    pin = config.pin_dir
    if not (pin / "g_state").exists():
        raise NotInstalled(f"nothing installed for agent {config.name!r} (no pins in {pin})")
    out: dict[str, Any] = {"pin_dir": str(pin), "attached": False, "xdp_mode": None, "prog_id": 0}
    if (pin / LINK_PIN).exists():
        with in_netns(config.netns):
            with Link.open_pinned(pin / LINK_PIN) as link:
                out["prog_id"] = link.prog_id
                out["attached"] = bool(link.prog_id) and link.mode is not None
                out["xdp_mode"] = link.mode.value if link.mode else None
    with PinnedView(pin) as view:
        out["generation"] = view.generation
        rules = {slot: {"packets": c.packets, "bytes": c.bytes, "dropped": c.dropped}
                 for slot, c in view.counters().items()}
    out["counters"] = rules
    return out
