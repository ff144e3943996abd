"""A hub on a temporary SQLite file (or a fresh PostgreSQL database), with helpers to
make users, tenants and tokens."""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pyotp

from hub import db, files
from hub.app import create_app
from hub.config import load_config

PASSWORD = "correct horse battery staple"
_counter = itertools.count()
STARTUP_TIMEOUT_S = 120  # a guard against a hang, not a timing


_template: list[Path] = []


async def migrated_sqlite() -> Path:
    """A SQLite file every migration was applied to, made once per test process: migrating
    takes about 2 s, and most hub tests start a fresh hub. A copy of it is what a fresh hub's
    start would have made; the start still runs the migrations (they find nothing to do)."""
    if not _template:
        where = Path(tempfile.mkdtemp(prefix="bulwark-hub-template-"))
        atexit.register(shutil.rmtree, where, True)
        ctx = await db.open_db(load_config(env={}, data_dir=str(where)), global_fallback=False)
        try:
            with ctx:
                await db.migrate(ctx)
        finally:
            await ctx.close_connections()
        _template.append(where / "hub.sqlite3")
    return _template[0]


class InLoop(contextlib.AbstractAsyncContextManager):
    """Marker: the hub conftest enters these inside the test's event loop."""


class HubHarness(InLoop):
    # Set by tests/hub/conftest.py while a test runs on PostgreSQL: harnesses made without
    # a database_url then get a fresh database from this server (tests/hub/postgres.py).
    postgres: ClassVar[Any] = None

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        settings = {
            "data_dir": str(tmp_path / "hub"),
            # Cheap hashing for tests; production keeps OWASP's parameters.
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "public_url": "http://127.0.0.1:8443",
        }
        if self.postgres is not None and "database_url" not in overrides:
            settings["database_url"] = self.postgres.new_database()
        settings.update(overrides)
        self.config = load_config(env={}, **settings)
        self.app = create_app(self.config)
        self._test_app = None
        self.totp: dict[str, pyotp.TOTP] = {}  # email → the authenticator of users made with 2FA

    async def __aenter__(self) -> HubHarness:
        config = self.config
        fresh = Path(config.data_dir) / "hub.sqlite3"
        if config.is_sqlite and config.database_url == "" and config.should_migrate_on_start and not fresh.exists():
            template = await migrated_sqlite()
            files.private_dir(fresh.parent)
            shutil.copyfile(template, fresh)
            os.chmod(fresh, 0o600)
        # Quart's default is 6 s for startup (migrations included): too tight on a loaded machine
        # running the suite on parallel workers, and a timed-out startup leaks its database context.
        self._test_app = self.app.test_app_class(self.app, startup_timeout=STARTUP_TIMEOUT_S,
                                                 shutdown_timeout=STARTUP_TIMEOUT_S)
        await self._test_app.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._test_app.__aexit__(*exc)

    @property
    def rt(self):
        return self.app.extensions["bulwark"]

    def client(self):
        return self._test_app.test_client()

    async def user(self, email: str | None = None, password: str = PASSWORD, *, totp: bool = True, **kw: Any):
        """A user; with 2FA on unless `totp=False` (every account needs it: such a user's
        session reaches only the set-up, hub.web.BEFORE_2FA)."""
        from hub.services import accounts

        email = email or f"user{next(_counter)}@example.com"
        user = await accounts.create_user(self.rt, email, password, **kw)
        if totp:
            await self.enrol(user)
        return user

    async def enrol(self, user) -> pyotp.TOTP:
        """Turn 2FA on for `user`; `login` then answers its second step by itself."""
        from hub.services import accounts

        uri, _ = await accounts.enrol_totp(self.rt, user)
        self.totp[user.email] = pyotp.parse_uri(uri)
        return self.totp[user.email]

    async def code(self, email: str) -> str:
        """The current code of a user made here. A code is good once per 30 s step, and
        tests sign in faster than that: the step last used is forgotten first."""
        from hub.models import User

        await User.filter(email=email).update(totp_last_step=None)
        return self.totp[email].now()

    async def login(self, email: str, password: str = PASSWORD) -> Session:
        """Password, then (for a user made with 2FA) the current code."""
        client = self.client()
        r = await client.post("/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, await r.get_data(as_text=True)
        body = await r.get_json()
        if body["mfa_required"] and email in self.totp:
            r = await client.post("/auth/second-factor", json={"code": await self.code(email)},
                                  headers={"X-CSRF-Token": body["csrf_token"]})
            assert r.status_code == 200, await r.get_data(as_text=True)
            body = await r.get_json()
        return Session(client, body["csrf_token"])

    async def tenant(self, name: str = "acme") -> Tenant:
        """A tenant with an owner signed in, and an all-scopes API token."""
        user = await self.user()
        owner = await self.login(user.email)
        r = await owner.post("/api/v1/tenants", json={"name": name})
        assert r.status_code == 201, await r.get_data(as_text=True)
        tenant_id = (await r.get_json())["id"]
        t = Tenant(self, uuid.UUID(tenant_id), owner, user)
        t.token = await t.make_token(["read", "write", "deploy", "billing"])
        return t


class Session:
    """A signed-in browser: sends the CSRF token on writes."""

    def __init__(self, client, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    async def request(self, method: str, path: str, **kw: Any):
        headers = kw.pop("headers", {})
        if method in {"POST", "PUT", "PATCH", "DELETE"}:
            headers.setdefault("X-CSRF-Token", self.csrf)
        return await self.client.open(path, method=method, headers=headers, **kw)

    async def get(self, path: str, **kw: Any):
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any):
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any):
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any):
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any):
        return await self.request("DELETE", path, **kw)


class TokenClient(Session):
    """An API-token caller."""

    def __init__(self, client, token: str) -> None:
        super().__init__(client, "")
        self.token = token

    async def request(self, method: str, path: str, **kw: Any):
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {self.token}")
        return await self.client.open(path, method=method, headers=headers, **kw)


class Tenant:
    def __init__(self, hub: HubHarness, tenant_id: uuid.UUID, owner: Session, user) -> None:
        self.hub, self.id, self.owner, self.user = hub, tenant_id, owner, user
        self.token: TokenClient | None = None

    @property
    def base(self) -> str:
        return f"/api/v1/tenants/{self.id}"

    async def make_token(self, scopes: list[str], **kw: Any) -> TokenClient:
        r = await self.owner.post(self.base + "/tokens", json={"name": "t", "scopes": scopes, **kw})
        assert r.status_code == 201, await r.get_data(as_text=True)
        return TokenClient(self.hub.client(), (await r.get_json())["token"])


class AgentClient(TokenClient):
    """A simulated agent speaking the agent protocol."""

    def __init__(self, client, credential: str, agent_id: str) -> None:
        super().__init__(client, credential)
        self.id = agent_id
        self.etag: str | None = None
        self.digest: str | None = None
        self.lists: dict[str, int] = {}

    async def desired(self, wait_s: float = 0, **kw: Any):
        body = {"etag": self.etag, "applied_digest": self.digest, "lists": self.lists, "wait_s": wait_s, **kw}
        r = await self.post("/agent/v1/desired", json=body)
        if r.status_code == 200:
            doc = await r.get_json()
            self.etag = doc["etag"]
            for lst in doc["lists"]:
                self.lists[lst["id"]] = lst["revision"]
            return doc
        assert r.status_code == 204, (r.status_code, await r.get_data(as_text=True))
        return None

    @contextlib.asynccontextmanager
    async def stream(self, wait_s: float = 5, **kw: Any):
        """The streamed desired state (`"stream": true`): yields a `Lines` reader."""
        body = {"etag": self.etag, "applied_digest": self.digest, "lists": self.lists, "wait_s": wait_s,
                "stream": True, **kw}
        async with self.client.request("/agent/v1/desired", method="POST", headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}) as conn:
            await conn.send(json.dumps(body).encode())
            await conn.send_complete()
            yield Lines(conn)

    async def report(self, **kw: Any):
        r = await self.post("/agent/v1/status", json=kw)
        assert r.status_code == 200, await r.get_data(as_text=True)


class Lines:
    """The documents of a streamed answer, one a line; `next()` is None once it ended."""

    def __init__(self, conn) -> None:
        self.conn, self.buffer, self.ended = conn, b"", False

    async def next(self, timeout_s: float = 10) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            if self.ended:
                return None
            chunk = await asyncio.wait_for(self.conn.receive(), timeout_s)
            self.ended = chunk == b""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


async def enroll(t: Tenant, labels: list[str] | None = None, hostname: str = "web1") -> AgentClient:
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 600, "labels": labels or []})
    assert r.status_code == 201, await r.get_data(as_text=True)
    join = (await r.get_json())["token"]
    client = t.hub.client()
    r = await client.post("/agent/v1/enroll", json={"join_token": join, "inventory": {
        "hostname": hostname, "kernel": "6.8.0", "xdp_mode": "native", "agent_version": "0.1.0",
        "interfaces": [{"name": "eth0", "addresses": ["192.0.2.10/24"]}]}})
    assert r.status_code == 201, await r.get_data(as_text=True)
    body = await r.get_json()
    return AgentClient(t.hub.client(), body["credential"], body["agent_id"])


def unpacked(text: str) -> list[str]:
    """The canonical entries of a packed list as the agent protocol carries it (base64)."""
    import base64

    from rules_dsl.addresses import Packed
    return list(Packed.from_bytes(base64.b64decode(text)))
