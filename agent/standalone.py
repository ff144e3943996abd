"""The one-shot operations behind `bulwark agent apply|status|detach`: synchronous,
no daemon. What `apply` installs stays (pinned) after the process exits."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.dataplane import Dataplane, read_pinned
from agent.errors import AgentError, NotInstalled
from agent.state import Desired, StateStore


def install(dp: Dataplane, desired: Desired) -> dict[str, Any]:
    """The widened table when a new one comes (no moment looser than both Plans), the maps
    (a first attach meets a filled guard), then the program, then the table;
    persisted last. Each step is atomic on its own; a crash between steps leaves the old
    state or the new one per part, and the next start re-applies the persisted state."""
    with dp.lock:
        if desired.active:
            dp.check_iface_free()  # another agent's interface: refused before its table is touched
            dp.widen_nft(desired)
        how = dp.apply_maps(desired)
        mode = dp.attach() if desired.active else None
        if not desired.active:
            dp.detach_program()
        table = dp.apply_nft(desired)
        dp.store.save(desired)
    return {"maps": how, "xdp_mode": mode.value if mode else None, "nft_table": table,
            "digest": desired.digest, "fallback_reason": dp.fallback_reason}


def status(config: AgentConfig) -> dict[str, Any]:
    """What is installed, from the pins and the state directory, plus the daemon's live
    view (rates, top sources) when it answers on its status endpoint."""
    store = StateStore(config.state_dir)
    out: dict[str, Any] = {"agent": config.name}
    installed = store.load_installed() or {}
    out["iface"] = installed.get("iface", config.iface)
    out["netns"] = installed.get("netns", config.netns)
    cfg = config.replace(netns=out["netns"]) if out["netns"] != config.netns else config
    out.update(read_pinned(cfg))
    try:
        applied = store.load()
    except AgentError as exc:
        applied, out["state_error"] = None, str(exc)
    out["digest"] = applied.digest if applied else None
    out["mode"] = applied.mode if applied else "none"
    out["policy"] = applied.plan.name if applied and applied.plan else None
    try:
        out["awaiting_confirmation"] = store.load_unconfirmed(applied)[0]
    except AgentError:
        out["awaiting_confirmation"] = False
    out["reverted_from"] = list(applied.reverted_from) if applied and applied.reverted_from else None
    out["daemon"] = daemon_status(config)
    return out


def daemon_status(config: AgentConfig) -> dict[str, Any] | None:
    if not config.http_port:
        return None
    url = f"http://{config.http_address}:{config.http_port}/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def detach(config: AgentConfig) -> list[str]:
    """Remove the program, our table and our pins. Raises NotInstalled when there are none."""
    store = StateStore(config.state_dir)
    installed = store.load_installed() or {}
    if installed.get("netns") and config.netns is None:
        config = config.replace(netns=installed["netns"])
    if installed.get("iface") and config.iface is None:
        config = config.replace(iface=installed["iface"])
    if not config.pin_dir.exists() and not installed:
        raise NotInstalled(f"nothing installed for agent {config.name!r}")
    dp = Dataplane(config, store)
    try:
        return dp.remove_all()
    finally:
        dp.close()


def uninstall(config: AgentConfig) -> list[str]:
    """What purging the package runs: detach every agent this machine holds (their pins and state
    name them), then remove the emptied pin and state roots. Safe to run twice."""
    import shutil

    names = {p.name for root in (Path(config.state_root), Path(config.pin_root))
             if root.is_dir() for p in root.iterdir() if p.is_dir()}
    removed: list[str] = []
    for name in sorted(names):
        try:
            removed += detach(config.replace(name=name, iface=None, netns=None))
        except NotInstalled:
            pass
        shutil.rmtree(Path(config.state_root) / name, ignore_errors=True)
    for root in (Path(config.pin_root), Path(config.state_root)):
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
            removed.append(str(root))
    return removed
