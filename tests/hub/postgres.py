"""A throwaway PostgreSQL server for the hub's tests.

`PostgresServer.start()` runs initdb into a temporary directory and starts `postgres` on
127.0.0.1 (a free port, its unix socket in that directory), as the `postgres` OS user when
run as root (the server refuses root). Durability is switched off: the data dies with the
tests. A template database is migrated once; each test gets a copy of it
(`CREATE DATABASE ... TEMPLATE`, a file copy), dropped afterwards. `stop()` shuts the
server down and removes the directory.

Where the binaries are missing the tests skip, unless BULWARK_REQUIRE_POSTGRES=1 or
BULWARK_REQUIRE_KERNEL=1 (CI), where a skip would hide a failure: they fail.
"""
from __future__ import annotations

import asyncio
import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRE_POSTGRES = "1" in (os.environ.get("BULWARK_REQUIRE_POSTGRES"), os.environ.get("BULWARK_REQUIRE_KERNEL"))
TEMPLATE = "bulwark_template"
_SETTINGS = {
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "max_connections": "200", "shared_buffers": "32MB", "log_min_messages": "warning",
}


def bin_dir() -> Path | None:
    """Where initdb and postgres are: $BULWARK_PG_BIN, Debian's newest, or the PATH."""
    candidates = [os.environ.get("BULWARK_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    which = shutil.which("initdb")
    candidates.append(str(Path(which).parent) if which else "")
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file():
            return Path(c)
    return None


def unavailable() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if bin_dir() is None:
        return "PostgreSQL server binaries not found (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


_prctl = ctypes.CDLL(None).prctl


def _die_with_parent() -> None:
    """In the server's process before exec: stop (SIGINT, fast shutdown) if pytest dies."""
    _prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, root: Path, bindir: Path, port: int) -> None:
        self.root, self.bindir, self.port = root, bindir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count()
        self._created: list[str] = []

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = bin_dir()
        assert bindir is not None, unavailable()
        root = Path(tempfile.mkdtemp(prefix="bulwark-pg-"))
        server = cls(root, bindir, free_port())
        try:
            server._init()
            server._run()
            server._make_template()
        except BaseException:
            server.stop()
            raise
        return server

    def _user_kw(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _init(self) -> None:
        subprocess.run(
            [self.bindir / "initdb", "-D", self.root / "data", "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, cwd=self.root, **self._user_kw(),
        )

    def _run(self) -> None:
        options = [f"--{k}={v}" for k, v in _SETTINGS.items()]
        log = open(self.root / "postgres.log", "wb")
        with log:
            self.proc = subprocess.Popen(
                [self.bindir / "postgres", "-D", self.root / "data", "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", self.root, *options],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, preexec_fn=_die_with_parent,
                **self._user_kw(),
            )
        deadline = time.monotonic() + 30
        while subprocess.run([self.bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{(self.root / 'postgres.log').read_text()}")
            time.sleep(0.05)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> None:
        """Run one statement in the maintenance database (psql: usable inside or outside
        an event loop)."""
        subprocess.run(
            [self.bindir / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.root, "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-c", statement],
            check=True, capture_output=True,
        )

    def _make_template(self) -> None:
        from hub import db
        from hub.config import load_config

        self.sql(f"CREATE DATABASE {TEMPLATE}")
        config = load_config(env={}, data_dir=str(self.root / "hub"), database_url=self.url(TEMPLATE))

        async def migrate() -> None:
            ctx = await db.open_db(config, global_fallback=False)
            try:
                with ctx:
                    await db.migrate(ctx)
            finally:
                await ctx.close_connections()

        asyncio.run(migrate())

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database, migrated or empty; returns its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        self._created.append(name)
        return self.url(name)

    def drop_created(self) -> None:
        """Drop the databases made since the last call (their apps have closed)."""
        while self._created:
            self.sql(f"DROP DATABASE IF EXISTS {self._created.pop()} WITH (FORCE)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
