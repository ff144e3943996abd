"""Errors of the agent: one hierarchy, each saying whose fault it is.

    AgentError
    ├── ConfigError          the operator's config is wrong (unknown key, bad value)
    ├── PolicyRejected       a policy or Plan the agent will not apply (does not compile,
    │                        would lock the operator out, lists do not parse); `.reasons`
    ├── StateError           the persisted state on disk cannot be read or written
    ├── DataplaneError       the kernel refused (BPF, XDP, nftables): raised `from` the BpfError
    │   └── NotInstalled     nothing of ours is installed where we looked
    └── HubError             the hub failed us
        ├── HubUnavailable   cannot reach it, or it answered 5xx: retry with backoff
        └── HubRejected      it refused us (401/403/4xx): retrying will not help

Errors crossing an I/O boundary (bpf, files, HTTP) are translated into these where they
cross, so actors and the CLI only ever catch AgentError.
"""
from __future__ import annotations


class AgentError(Exception):
    """Anything the agent reports as a failure."""


class ConfigError(AgentError):
    pass


class PolicyRejected(AgentError):
    def __init__(self, message: str, reasons: tuple[str, ...] = ()):
        super().__init__(message if not reasons else f"{message}: " + "; ".join(reasons[:5]))
        self.reasons = reasons


class StateError(AgentError):
    pass


class DataplaneError(AgentError):
    pass


class NotInstalled(DataplaneError):
    pass


class HubError(AgentError):
    pass


class HubUnavailable(HubError):
    pass


class HubRejected(HubError):
    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status
