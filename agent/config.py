"""The agent's configuration: one frozen, typed object, built once per process.

Layers, each overriding the one before: defaults → TOML file → `BULWARK_AGENT_<KEY>`
environment variables → command-line flags, built by `bulwark.settings` (shared with the
hub). Unknown keys in any layer are errors (ConfigError), so a typo never silently falls
back to a default. Every path is
configurable, so several agents (one per namespace) can share a host.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from agent.errors import ConfigError
from bulwark import settings

ENV_PREFIX = "BULWARK_AGENT_"
XDP_MODES = ("native", "generic", "auto")


@dataclass(frozen=True)
class AgentConfig:
    name: str = "default"                      # names the pin directory and the state directory
    iface: str | None = None                   # the protected interface
    netns: str | None = None                   # named network namespace the interface lives in
    xdp_mode: str = "auto"                     # native | generic | auto (native, else generic)
    pin_root: str = "/sys/fs/bpf/bulwark"      # pins go under pin_root/name (on bpffs)
    state_root: str = "/var/lib/bulwark/agent"  # state goes under state_root/name
    policy: str | None = None                  # standalone: the policy file (.bw)
    hub_url: str | None = None                 # managed: set by `enroll`, read from the credential
    hub_address: str | None = None             # lockout guard: the hub's address as seen here
    hub_port: int | None = None
    ssh_port: int = 22
    admin_prefixes: tuple[str, ...] = ()
    ca_file: str | None = None                 # hub TLS: the CA bundle to verify it with
    hub_ca_sha256: str | None = None           # hub TLS: trust only the CA whose DER has this SHA-256
    allow_insecure_http: bool = False          # accept an http:// hub (tests, demos): no TLS at all
    sample_interval_s: float = 1.0
    watchdog_interval_s: float = 0.5
    confirm_window_s: float = 60.0
    long_poll_s: float = 30.0
    http_timeout_s: float = 10.0
    top_sources: int = 20
    top_window_s: float = 60.0                 # top dropped sources over this sliding window
    buffer_max_batches: int = 600              # metrics batches kept for the hub while it is away
    http_address: str = "127.0.0.1"            # metrics (/metrics) and status (/status) endpoint
    http_port: int = 9731                      # 0: no endpoint
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_reset_s: float = 60.0              # an actor up this long has its backoff reset

    @property
    def pin_dir(self) -> Path:
        return Path(self.pin_root) / self.name

    @property
    def state_dir(self) -> Path:
        return Path(self.state_root) / self.name

    @property
    def credential_path(self) -> Path:
        return self.state_dir / "credential.json"

    def replace(self, **changes: Any) -> "AgentConfig":
        return _validated(dataclasses.replace(self, **changes))


def ca_pin(text: str) -> str:
    """A CA pin as compared: lower-case hex, without colons or a `sha256:` prefix."""
    return text.lower().removeprefix("sha256:").replace(":", "")


def _validated(cfg: AgentConfig) -> AgentConfig:
    if cfg.xdp_mode not in XDP_MODES:
        raise ConfigError(f"xdp_mode must be one of {', '.join(XDP_MODES)}, not {cfg.xdp_mode!r}")
    if not cfg.name or "/" in cfg.name or cfg.name.startswith("."):
        raise ConfigError(f"name {cfg.name!r} cannot name a directory")
    for key in ("sample_interval_s", "watchdog_interval_s", "confirm_window_s", "backoff_initial_s",
                "backoff_max_s"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive")
    if cfg.hub_ca_sha256 is not None:
        pin = ca_pin(cfg.hub_ca_sha256)
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise ConfigError("hub_ca_sha256 must be a SHA-256 in hex (64 digits, colons allowed)")
        cfg = dataclasses.replace(cfg, hub_ca_sha256=pin)
    if not 0 <= cfg.http_port < 65536:
        raise ConfigError("http_port must be 0..65535")
    return cfg


def load_config(*, file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                flags: Mapping[str, Any] | None = None) -> AgentConfig:
    """Build the config from its layers (`bulwark.settings`; the file may also be named by
    BULWARK_AGENT_CONFIG, and may hold one `[agent]` table). Raises ConfigError naming
    the bad key or value."""
    env = os.environ if env is None else env
    file = file if file is not None else (env.get(ENV_PREFIX + "CONFIG") or None)
    return _validated(settings.load(AgentConfig, error=ConfigError, env_prefix=ENV_PREFIX, file=file,
                                    section="agent", env=env, flags=flags))
