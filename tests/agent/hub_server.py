"""A real hub process on loopback for the managed-mode tests: serves with Hypercorn, makes
a user, a tenant, an API token and a join token through its own HTTP API, then prints
one JSON line {"url", "tenant", "api_token", "join_token"} and serves until killed.
Started again on the same DATA_DIR (a hub coming back), it serves the same data and
prints the same line.

    python -m tests.agent.hub_server DATA_DIR PORT [CERTFILE KEYFILE CAFILE]

With a certificate it serves https as `bulwark hub serve` does (TLS 1.3 only).
"""
from __future__ import annotations

import asyncio
import json
import ssl
import sys
from pathlib import Path

import httpx
from hypercorn.asyncio import serve

from hub.app import create_app
from hub.cli import hypercorn_config
from hub.config import load_config

PASSWORD = "correct horse battery staple"


async def main(data_dir: str, port: int, certfile: str = "", keyfile: str = "", cafile: str = "") -> None:
    url = f"{'https' if certfile else 'http'}://127.0.0.1:{port}"
    config = load_config(env={}, data_dir=data_dir, argon2_memory_kib=1024, argon2_time_cost=1,
                         public_url=url, long_poll_max_s=5, tls_certfile=certfile, tls_keyfile=keyfile)
    app = create_app(config)
    hc = hypercorn_config(config, f"127.0.0.1:{port}")
    hc.accesslog = None
    server = asyncio.create_task(serve(app, hc))
    verify = ssl.create_default_context(cafile=cafile) if cafile else True
    async with httpx.AsyncClient(base_url=url, timeout=10, verify=verify) as client:
        for _ in range(200):
            try:
                await client.get("/")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        saved = Path(data_dir) / "test-hub.json"
        if saved.exists():
            print(saved.read_text().strip(), flush=True)
            await server
            return
        from hub.services import accounts
        import pyotp

        user = await accounts.create_user(app.extensions["bulwark"], "ops@example.com", PASSWORD)
        uri, _ = await accounts.enrol_totp(app.extensions["bulwark"], user)  # every account has 2FA
        r = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        r = await client.post("/auth/second-factor", json={"code": pyotp.parse_uri(uri).now()},
                              headers={"X-CSRF-Token": r.json()["csrf_token"]})
        csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
        r = await client.post("/api/v1/tenants", json={"name": "acme"}, headers=csrf)
        tenant = r.json()["id"]
        r = await client.post(f"/api/v1/tenants/{tenant}/tokens", headers=csrf,
                              json={"name": "t", "scopes": ["read", "write", "deploy"]})
        token = r.json()["token"]
        r = await client.post(f"/api/v1/tenants/{tenant}/join-tokens", json={"ttl_s": 600},
                              headers={"Authorization": f"Bearer {token}"})
        join = r.json()["token"]
    line = json.dumps({"url": url, "tenant": tenant, "api_token": token, "join_token": join})
    saved.write_text(line)
    print(line, flush=True)
    await server


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]))
