"""The hub as a real process, set up the way an operator would: `bulwark hub create-admin`,
`bulwark hub serve` (Hypercorn), then the public API for everything else.

`TenantApi` is a thin synchronous client of /api/v1/tenants/<id> with an API token: it
says nothing the API does not, and raises `HubCallFailed` (with the hub's answer) on any
status it did not expect.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.processes import spawn, stop


class HubCallFailed(RuntimeError):
    """The hub answered a call with an unexpected status (the message holds its answer)."""


def bulwark_command() -> list[str]:
    """`bulwark` from the same environment as this interpreter."""
    script = Path(sys.executable).with_name("bulwark")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bulwark.cli"]


@dataclass
class HubProcess:
    url: str
    data_dir: Path
    bind: str
    log: Path
    pid_file: Path | None = None
    proc: subprocess.Popen | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # more of the hub's settings (database_url...)
    workers: int = 1  # `serve --workers N` (PostgreSQL only)
    # email → recovery codes of the operators made with `create_admin(totp=True)`
    recovery_codes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def panel_url(self) -> str:
        """The web panel (hub/panel): sign in there with the admin's email and password."""
        return f"{self.url}/login"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "hub.toml"

    def command(self, *args: str) -> list[str]:
        """`bulwark hub --config <this hub's file> ARGS`; writes the file (flat TOML)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        values = {"data_dir": str(self.data_dir), "public_url": self.url, "bind": self.bind,
                  "log_level": "WARNING", **self.settings}
        self.config_path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        return [*bulwark_command(), "hub", "--config", str(self.config_path), *args]

    def create_admin(self, email: str, password: str, *, totp: bool = False) -> str | None:
        """The first platform operator, through the CLI (which also creates the database).
        With `totp`, 2FA is on from the start: returns its otpauth:// URI."""
        out = subprocess.run(self.command("create-admin", email, "--password-stdin", *(["--totp"] if totp else [])),
                             input=password + "\n", capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise HubCallFailed(f"create-admin failed: {out.stderr.strip() or out.stdout.strip()}")
        lines = out.stdout.splitlines()
        uri = next((line for line in lines if line.startswith("otpauth://")), None)
        if uri is not None:
            self.recovery_codes[email] = lines[-1].split()
        return uri

    def start(self, timeout_s: float = 60) -> None:
        """Serve, and return once /healthz answers. Raises HubCallFailed if it never does."""
        serve = ["serve", "--workers", str(self.workers)] if self.workers > 1 else ["serve"]
        self.proc = spawn(self.command(*serve), self.log, pid_file=self.pid_file)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HubCallFailed(f"the hub exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise HubCallFailed(f"the hub did not answer within {timeout_s} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def sign_in(client: httpx.Client, email: str, password: str, otpauth: str) -> dict[str, str]:
    """Password, then a code of `otpauth`; returns the CSRF header of the session. A code
    is good once per 30 s step: a second sign-in in the same step uses the next step's
    code (the hub allows one step of skew)."""
    import pyotp

    totp = pyotp.parse_uri(otpauth)
    r = _ok(client.post("/auth/login", json={"email": email, "password": password}), 200)
    pending = {"X-CSRF-Token": r.json()["csrf_token"]}
    for at in (time.time(), time.time() + 30):
        r = client.post("/auth/second-factor", json={"code": totp.at(at)}, headers=pending)
        if r.status_code != 401:
            break
    return {"X-CSRF-Token": _ok(r, 200).json()["csrf_token"]}


def open_tenant(url: str, email: str, password: str, otpauth: str, name: str = "demo") -> "TenantApi":
    """Sign in (password and code), create a tenant and an API token (read, write,
    deploy) for it."""
    with httpx.Client(base_url=url, timeout=30) as client:
        csrf = sign_in(client, email, password, otpauth)
        tenant = _ok(client.post("/api/v1/tenants", json={"name": name}, headers=csrf), 201).json()["id"]
        token = _ok(client.post(f"/api/v1/tenants/{tenant}/tokens", headers=csrf,
                                json={"name": "demo", "scopes": ["read", "write", "deploy"]}), 201).json()["token"]
    api = TenantApi(url, tenant, token)
    api.otpauth = otpauth  # to sign in again as the tenant's owner (sign_in)
    return api


class TenantApi:
    def __init__(self, url: str, tenant: str, token: str):
        self.url, self.tenant, self.token = url, tenant, token
        self.client = httpx.Client(base_url=f"{url}/api/v1/tenants/{tenant}",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, expect: int = 200, **kw) -> Any:
        return _ok(self.client.request(method, path, **kw), expect).json()

    def join_token(self) -> str:
        return self._call("POST", "/join-tokens", 201, json={"ttl_s": 600})["token"]

    def create_list(self, name: str, kind: str, networks: list[str] = ()) -> str:
        list_id = self._call("POST", "/lists", 201, json={"name": name, "kind": kind})["id"]
        if networks:
            self.change_list(list_id, add=networks)
        return list_id

    def change_list(self, list_id: str, *, add: list[str] = (), remove: list[str] = ()) -> dict:
        return self._call("POST", f"/lists/{list_id}/entries",
                          json={"add": [{"network": n} for n in add], "remove": list(remove)})

    def create_policy(self, name: str, source: str) -> dict:
        return self._call("POST", "/policies", 201, json={"name": name, "source": source})

    def save_policy(self, policy_id: str, source: str) -> dict:
        return self._call("PUT", f"/policies/{policy_id}", json={"source": source})

    def deploy(self, policy_id: str, agent_ids: list[str], version: int | None = None) -> dict:
        return self._call("POST", "/deployments", 201,
                          json={"policy_id": policy_id, "version": version, "agent_ids": agent_ids})

    def rollback(self, deployment_id: str) -> dict:
        return self._call("POST", f"/deployments/{deployment_id}/rollback", 201, json={})

    def rename_agent(self, agent_id: str, name: str) -> dict:
        return self._call("PATCH", f"/agents/{agent_id}", json={"name": name})

    def agent(self, agent_id: str) -> dict:
        return self._call("GET", f"/agents/{agent_id}")

    def metrics(self, agent_id: str, start: int | None = None) -> list[dict]:
        params = {"agent_id": agent_id} | ({"start": start} if start is not None else {})
        return self._call("GET", "/metrics", params=params)["points"]


def _ok(resp: httpx.Response, expect: int) -> httpx.Response:
    if resp.status_code != expect:
        raise HubCallFailed(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:500]}")
    return resp
