"""Agents as real `bulwark agent` processes, one per protected namespace.

An agent process stays in the host's namespace and enters its site's namespace only for
kernel work (the `netns` setting), so it reaches the hub on 127.0.0.1 like any local
client while its XDP program and nftables table live inside the site. Each run's agents
pin under /sys/fs/bpf/<prefix>/ and keep state under the run's own directory.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from agent.config import AgentConfig, load_config
from demo.hub import bulwark_command
from demo.processes import spawn, stop
from demo.topology import Site


class AgentFailed(RuntimeError):
    """An agent process could not enrol, or did not reach the state asked for in time."""


@dataclass
class AgentProcess:
    name: str
    site: Site
    pin_root: Path
    run_dir: Path
    http_port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)
    agent_id: str | None = None

    @property
    def config_path(self) -> Path:
        return self.run_dir / f"{self.name}.toml"

    @property
    def log(self) -> Path:
        return self.run_dir / "logs" / f"agent-{self.name}.log"

    def write_config(self, **extra: Any) -> AgentConfig:
        """The agent's TOML file (every path inside this run) → the parsed config."""
        values = {"name": self.name, "iface": self.site.iface, "netns": self.site.ns, "xdp_mode": "native",
                  "pin_root": str(self.pin_root), "state_root": str(self.run_dir / "agents"),
                  "http_port": self.http_port, "sample_interval_s": 1.0,
                  # the demo's hub is plain http on loopback; a real agent refuses that
                  "allow_insecure_http": True, **extra}
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        return self.config()

    def config(self) -> AgentConfig:
        return load_config(file=self.config_path, env={})

    def enroll(self, hub_url: str, join_token: str) -> str:
        from agent.hub_link import load_credential

        out = subprocess.run([*bulwark_command(), "agent", "enroll", "--config", str(self.config_path),
                              "--hub", hub_url, "--token-stdin"],
                             input=join_token + "\n", capture_output=True, text=True, timeout=60)
        if out.returncode:
            raise AgentFailed(f"agent {self.name}: enroll failed: {out.stderr.strip()}")
        self.agent_id = load_credential(self.config())["agent_id"]
        return self.agent_id

    def start(self) -> None:
        self.proc = spawn([*bulwark_command(), "agent", "run", "--config", str(self.config_path)], self.log,
                          pid_file=self.run_dir / "pids" / f"agent-{self.name}.pid")

    def stop(self) -> int | None:
        """SIGTERM: the agent stops and leaves its protections in place (fail static)."""
        if self.proc is None:
            return None
        code, self.proc = stop(self.proc), None
        return code

    def status(self) -> dict[str, Any] | None:
        """The daemon's /status, or None while it does not answer."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/status", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_for(self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 30) -> dict:
        """Poll /status until predicate holds. Raises AgentFailed (naming `what`) otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AgentFailed(f"agent {self.name} exited ({self.proc.returncode}); see {self.log}")
            st = self.status()
            if st is not None and predicate(st):
                return st
            time.sleep(0.1)
        raise AgentFailed(f"agent {self.name}: {what} not seen within {timeout_s} s; see {self.log}")
