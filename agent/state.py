"""The desired state, and keeping it on disk so protections survive restarts (fail static).

A `Desired` is data: what the kernel should hold (mode, Plan, list contents). The
`StateStore` keeps the last applied one (`applied.json`), the one before (`previous.json`)
and, while a hub Plan awaits confirmation, what a revert goes back to (`unconfirmed.json`),
each written atomically: temp file, fsync,
rename, fsync of the directory; a crash leaves the old file or the new one, never half.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.entries import Entries, from_wire, to_wire
from agent.errors import StateError
from agent.memory import release_memory
from rules_dsl import Plan, PlanError

MODES = ("enforce", "monitor", "deactivate", "none")
# List changes up to this many entries travel as `Desired.deltas` and edit the live maps
# in place; larger ones rebuild the address maps in the idle generation and arrive with
# the flip (so they are never spelled out entry by entry).
# A host change costs 30-90 us (its delta entry, the table's filter bit, a look at the
# table: bpf/host_table.py); rebuilding a 1,000,000-host list costs 0.1-0.15 s.
DELTA_MAX = 2_000


@dataclass(frozen=True)
class ListState:
    name: str
    revision: int = 0
    entries: Entries = field(default_factory=Entries)
    id: str = ""

    def __post_init__(self):
        if not isinstance(self.entries, Entries):
            object.__setattr__(self, "entries", Entries(self.entries))


@dataclass(frozen=True)
class Desired:
    """What the kernel should enforce. `source`: "policy" (standalone), "hub", or "revert"
    (the hub's previous state, applied again when a new one went unconfirmed; then
    `reverted_from` is the (digest, deployment id) taken back, held back until the hub
    names another deployment)."""
    mode: str = "none"
    plan: Plan | None = None
    lists: tuple[ListState, ...] = ()
    source: str = "policy"
    etag: str | None = None
    deployment_id: str | None = None
    # list deltas since the previous Desired (name -> (added, removed)), when only lists moved
    deltas: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = field(default=(), compare=False)
    reverted_from: tuple[str | None, str | None] | None = field(default=None, compare=False)
    # the hub's signature over (agent, deployment, digest, mode): checked by agent.trust
    # when the state arrives; not persisted (what is on disk was checked then)
    signature: str | None = field(default=None, compare=False)

    @property
    def digest(self) -> str | None:
        return self.plan.digest if self.plan is not None else None

    @property
    def active(self) -> bool:
        return self.mode in ("enforce", "monitor") and self.plan is not None

    def list_entries(self) -> dict[str, Entries]:
        return {x.name: x.entries for x in self.lists}

    def content_id(self) -> tuple:
        return tuple(sorted((x.name, x.revision, len(x.entries)) for x in self.lists))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "plan": None if self.plan is None else json.loads(self.plan.to_json()),
                "source": self.source, "etag": self.etag, "deployment_id": self.deployment_id,
                "reverted_from": None if self.reverted_from is None else list(self.reverted_from),
                "lists": [{"name": x.name, "id": x.id, "revision": x.revision, "packed": to_wire(x.entries)}
                          for x in self.lists]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Desired":
        """Raises StateError when the document is not a desired state."""
        try:
            plan = None if doc.get("plan") is None else Plan.from_json(json.dumps(doc["plan"]))
            mode = doc["mode"]
            if mode not in MODES:
                raise ValueError(f"mode {mode!r}")
            lists = tuple(ListState(x["name"], int(x.get("revision", 0)), _entries(x),
                                    x.get("id", "")) for x in doc.get("lists", ()))
            reverted = doc.get("reverted_from")
            return cls(mode=mode, plan=plan, lists=lists, source=doc.get("source", "policy"),
                       etag=doc.get("etag"), deployment_id=doc.get("deployment_id"),
                       reverted_from=None if reverted is None else (reverted[0], reverted[1]))
        except (KeyError, TypeError, ValueError, PlanError) as exc:
            raise StateError(f"not a desired state: {exc}") from None


def _entries(doc: dict[str, Any]) -> Entries:
    """A list's entries as persisted: `packed`, the hub's packed form in base64 (a million
    entries load and save as one string); or, in files written before, `entries` as one
    newline-joined string or a JSON list of texts."""
    if "packed" in doc:
        return from_wire(doc["packed"])
    old = doc.get("entries", ())
    if isinstance(old, str):
        return Entries(old.split("\n") if old else [])
    if not isinstance(old, list):
        raise TypeError("entries: expected a string or a list")
    return Entries(old)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace path with data: temp file, fsync, rename, fsync the directory.

    Raises StateError when the disk refuses."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the state dir: the agent's alone
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StateError(f"cannot write {path}: {exc.strerror}") from exc


def read_json(path: Path) -> Any | None:
    """The JSON document at path, or None when there is none. Raises StateError if unreadable."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc


class StateStore:
    """applied.json (what the kernel was last made to hold) and previous.json.

    The applied state last loaded or saved is kept (while the file is unchanged), so the
    actors that read it at start (reconciler, hub link) share one copy of a big list."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self._applied: tuple[tuple[int, int, int], Desired] | None = None  # (file identity, state)

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = self.applied_path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    @property
    def applied_path(self) -> Path:
        return self.dir / "applied.json"

    def load(self, which: str = "applied") -> Desired | None:
        if which != "applied":
            doc = read_json(self.dir / f"{which}.json")
            return None if doc is None else Desired.from_dict(doc)
        seen = self._identity()
        if seen is not None and self._applied is not None and self._applied[0] == seen:
            return self._applied[1]
        doc = read_json(self.applied_path)
        desired = None if doc is None else Desired.from_dict(doc)
        self._applied = (seen, desired) if seen is not None and desired is not None else None
        return desired

    def save(self, desired: Desired, *, keep_previous: bool = True) -> None:
        """Persist desired as the applied state; the one it replaces becomes previous."""
        self._applied = None
        try:
            self._save(desired, keep_previous)
            seen = self._identity()
            self._applied = (seen, desired) if seen is not None else None
        finally:
            release_memory()  # a big list's JSON was built and dropped here

    def _save(self, desired: Desired, keep_previous: bool) -> None:
        if keep_previous and self.applied_path.exists():
            current = self.applied_path.read_bytes()
            new = json.dumps(desired.to_dict(), sort_keys=True).encode()
            if current != new:
                write_atomic(self.dir / "previous.json", current)
            write_atomic(self.applied_path, new)
            return
        write_atomic(self.applied_path, json.dumps(desired.to_dict(), sort_keys=True).encode())

    def save_unconfirmed(self, applied: Desired, previous: Desired | None) -> None:
        """`applied` awaits the hub's confirmation; `previous` is what a revert goes back to.
        Kept apart from previous.json, which a list change during the window overwrites, so
        that a restart inside the window still reverts to the right state."""
        doc = {"digest": applied.digest, "deployment_id": applied.deployment_id,
               "previous": None if previous is None else previous.to_dict()}
        write_atomic(self.dir / "unconfirmed.json", json.dumps(doc, sort_keys=True).encode())

    def load_unconfirmed(self, applied: Desired | None) -> tuple[bool, Desired | None]:
        """(whether `applied` is the state awaiting confirmation, the state to revert to).
        Raises StateError when the file cannot be read."""
        doc = read_json(self.dir / "unconfirmed.json")
        if doc is None or applied is None or not isinstance(doc, dict) \
                or (doc.get("digest"), doc.get("deployment_id")) != (applied.digest, applied.deployment_id):
            return False, None
        return True, None if doc.get("previous") is None else Desired.from_dict(doc["previous"])

    def clear_unconfirmed(self) -> None:
        try:
            (self.dir / "unconfirmed.json").unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot remove {self.dir / 'unconfirmed.json'}: {exc.strerror}") from exc

    def clear(self) -> None:
        self._applied = None
        for name in ("applied.json", "previous.json", "installed.json", "unconfirmed.json"):
            try:
                (self.dir / name).unlink()
            except FileNotFoundError:
                pass

    def save_installed(self, info: dict[str, Any]) -> None:
        write_atomic(self.dir / "installed.json", json.dumps(info, sort_keys=True).encode())

    def load_installed(self) -> dict[str, Any] | None:
        return read_json(self.dir / "installed.json")
