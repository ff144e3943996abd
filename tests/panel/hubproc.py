"""A real hub process for the browser tests (Hypercorn on a free loopback port), run from
this checkout's code, and seeded through the public API as an operator and an agent would."""
from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp

from demo.hub import HubProcess, bulwark_command

PASSWORD = "correct horse battery staple"
ADMIN = "admin@example.com"
NEWCOMER = "new@example.com"  # no 2FA, no tenant yet
CLOSER = "closer@example.com"  # no 2FA ever: closes their account from the limited session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CheckoutHub(HubProcess):
    """`python -m bulwark.cli` from the current directory (the worktree under test), not
    whatever `bulwark` script the virtualenv's editable install points at."""

    def command(self, *args: str) -> list[str]:
        argv = super().command(*args)
        return [sys.executable, "-m", "bulwark.cli", *argv[len(bulwark_command()):]]


@dataclass
class Seeded:
    url: str
    tenant: str
    other_tenant: str
    totp: pyotp.TOTP
    recovery_codes: list[str]
    agent_id: str
    agent_credential: str
    list_id: str
    list_size: int
    more_agents: dict[str, str] = field(default_factory=dict)  # hostname → credential, past edge-1

    def next_code(self) -> str:
        """A TOTP code the hub has not seen yet: the next time step (it allows one step of
        skew), since set-up consumed the current one."""
        return self.totp.at(time.time() + 30)


def _ok(r: httpx.Response, status: int = 200) -> httpx.Response:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r


def seed(url: str, list_size: int, more_agents: tuple[str, ...] = ()) -> Seeded:
    """An admin with 2FA and two tenants; an enrolled agent (edge-1) that reported status
    and traffic, and `more_agents` (hostnames) enrolled the same way; a deny list of
    `list_size` entries."""
    with httpx.Client(base_url=url, timeout=60) as c:
        csrf = {"X-CSRF-Token": _ok(c.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})).json()["csrf_token"]}
        uri = _ok(c.post("/auth/2fa/setup", headers=csrf)).json()["otpauth_uri"]
        totp = pyotp.parse_uri(uri)
        codes = _ok(c.post("/auth/2fa/confirm", headers=csrf, json={"code": totp.now()})).json()["recovery_codes"]
        tenant = _ok(c.post("/api/v1/tenants", headers=csrf, json={"name": "Acme"}), 201).json()["id"]
        other = _ok(c.post("/api/v1/tenants", headers=csrf, json={"name": "Globex"}), 201).json()["id"]
        api = f"/api/v1/tenants/{tenant}"
        join = _ok(c.post(f"{api}/join-tokens", headers=csrf, json={"ttl_s": 600, "labels": ["web"], "max_uses": 1 + len(more_agents)}), 201).json()["token"]
        list_id = _ok(c.post(f"{api}/lists", headers=csrf, json={"name": "crowdsec-ban", "kind": "deny"}), 201).json()["id"]
        body = "".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32 # bot {i}\n" for i in range(list_size))
        _ok(c.post(f"{api}/lists/{list_id}/import?format=text", headers={**csrf, "Content-Type": "text/plain"},
                   content=body.encode()))
    def enroll(hostname: str) -> dict:
        return _ok(httpx.post(f"{url}/agent/v1/enroll", timeout=30, json={
            "join_token": join, "inventory": {"hostname": hostname, "xdp_mode": "native", "kernel": "6.1.0"}}),
            201).json()

    enrolled = enroll("edge-1")
    seeded = Seeded(url, tenant, other, totp, codes, enrolled["agent_id"], enrolled["credential"], list_id, list_size,
                    {name: enroll(name)["credential"] for name in more_agents})
    report_status(seeded)
    for name in more_agents:
        report_status(seeded, agent=name)
    send_metrics(seeded, packets=100)
    return seeded


def report_status(s: Seeded, applied: str | None = None, agent: str = "edge-1") -> None:
    """What an agent's status report says: `applied` is the digest it enforces."""
    credential = s.agent_credential if agent == "edge-1" else s.more_agents[agent]
    _ok(httpx.post(f"{s.url}/agent/v1/status", timeout=30, headers={"Authorization": f"Bearer {credential}"},
                   json={"applied_digest": applied, "healthy": True, "mode": "enforce" if applied else "none"}))


def send_metrics(s: Seeded, packets: int) -> None:
    now = int(time.time())
    _ok(httpx.post(f"{s.url}/agent/v1/metrics", timeout=30, headers={"Authorization": f"Bearer {s.agent_credential}"},
                   json={"points": [{"ts": now, "rule": "default", "packets": packets, "bytes": packets * 60},
                                    {"ts": now, "rule": "malformed", "packets": packets // 10, "bytes": packets * 4}],
                         "top_sources": [{"ts": now, "source": f"203.0.113.{i}", "packets": packets // (10 * i)}
                                         for i in range(1, 6)]}))


def start_hub(tmp: Path, settings: dict | None = None, users: tuple[str, ...] = (),
              with_2fa: tuple[str, ...] = ()) -> CheckoutHub:
    """`settings`: more of the hub's settings (SMTP...); `users`: more users without 2FA
    (like NEWCOMER: their first sign-in leads to its set-up); `with_2fa`: users made with
    2FA on (`create-admin --totp`), who sign in with their recovery codes
    (`hub.recovery_codes[email]`)."""
    port = free_port()
    hub = CheckoutHub(url=f"http://127.0.0.1:{port}", data_dir=tmp / "hub", bind=f"127.0.0.1:{port}",
                      log=tmp / "hub.log",
                      settings={"argon2_memory_kib": 1024, "argon2_time_cost": 1, **(settings or {})})
    for email in (ADMIN, NEWCOMER, *users):
        hub.create_admin(email, PASSWORD)
    for email in with_2fa:
        hub.create_admin(email, PASSWORD, totp=True)
    hub.start()
    return hub
