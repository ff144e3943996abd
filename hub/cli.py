"""`bulwark hub ...`: serve, migrate, create-admin, audit verify, audit checkpoint.

Settings come from `--config FILE` (or BULWARK_HUB_CONFIG) and BULWARK_HUB_* variables.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from pathlib import Path

from hub.config import load_config
from hub.errors import ConfigError, HubError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulwark hub", description="run the central hub")
    p.add_argument("--config", default=os.environ.get("BULWARK_HUB_CONFIG"), help="TOML settings file")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the hub with Hypercorn")
    serve.add_argument("--bind", help="host:port (overrides the setting)")
    serve.add_argument("--workers", type=int, default=1,
                       help="hub processes sharing the port (SO_REUSEPORT); more than one needs PostgreSQL")
    sub.add_parser("migrate", help="apply database migrations")
    admin = sub.add_parser("create-admin", help="create the first platform operator")
    admin.add_argument("email")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit log's keyed hash chain, and that it "
                                  "still reaches the last signed checkpoint")
    verify.add_argument("--checkpoint", metavar="FILE", help="check against this exported checkpoint instead")
    cp = audit_sub.add_parser("checkpoint", help="verify, then sign the newest entry (Ed25519) and export it")
    cp.add_argument("--out", metavar="FILE", help="write the checkpoint here (default: print it)")
    return p


async def _with_db(config, fn):
    from hub import db

    ctx = await db.open_db(config, global_fallback=False)
    try:
        with ctx:
            if config.should_migrate_on_start:
                await db.migrate(ctx)
            return await fn(ctx)
    finally:
        await ctx.close_connections()


async def _migrate(config) -> int:
    from hub import db

    async def run(ctx):
        await db.migrate(ctx)
        print("migrations applied")
        return 0

    return await _with_db(config, run)


async def _create_admin(config, email: str, password: str) -> int:
    from hub.runtime import Runtime
    from hub.services import accounts

    async def run(ctx):
        rt = Runtime.create(config)
        user = await accounts.create_user(rt, email, password, platform_admin=True)
        await rt.audit.append(actor="cli", action="user.create_admin", target=user.email)
        print(f"created platform operator {user.email}")
        return 0

    return await _with_db(config, run)


async def _audit_verify(config, checkpoint_file: str | None) -> int:
    import json

    from hub.services.audit import AuditLog

    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = json.loads(Path(checkpoint_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"bulwark hub: cannot read the checkpoint {checkpoint_file}: {exc}", file=sys.stderr)
            return 2

    async def run(ctx):
        checked, problems = await AuditLog(config.data_dir).verify(checkpoint)
        for problem in problems:
            print(f"audit: {problem}")
        print(f"audit: {checked} entries checked, {len(problems)} problem(s)")
        return 1 if problems else 0

    return await _with_db(config, run)


async def _audit_checkpoint(config, out: str | None) -> int:
    import json

    from hub.services.audit import AuditLog

    async def run(ctx):
        cp = await AuditLog(config.data_dir).checkpoint()
        if cp is None:
            print("bulwark hub: no checkpoint: the log is empty or does not verify (run audit verify)",
                  file=sys.stderr)
            return 1
        text = json.dumps(cp, indent=2, sort_keys=True) + "\n"
        if out is None:
            print(text, end="")
        else:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"audit: checkpoint at entry {cp['seq']} written to {out}")
        return 0

    return await _with_db(config, run)


def _serve(config, bind: str | None, workers: int) -> int:
    """Serve in this process, or in `workers` forked processes each binding the same port
    with SO_REUSEPORT (the kernel spreads connections); this one forwards SIGTERM and
    SIGINT to them and returns the worst exit status."""
    from hypercorn.config import Config as HypercornConfig

    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and config.is_sqlite:
        raise ConfigError("--workers above 1 needs PostgreSQL (database_url): an agent waiting on one process "
                          "is woken by a change made on another through LISTEN/NOTIFY")
    hc = HypercornConfig()
    hc.bind = [bind or config.bind]
    hc.workers = workers  # Hypercorn sets SO_REUSEPORT on the socket when above 1
    hc.accesslog = "-"
    if workers == 1:
        return _serve_here(config, hc)
    children: list[int] = []

    def forward(signum, _frame) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)  # the children's event loops install their own
    signal.signal(signal.SIGINT, forward)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover (runs in the child)
            code = 1
            try:
                code = _serve_here(config, hc)
            finally:
                os._exit(code)
        children.append(pid)
    return max(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children)


def _serve_here(config, hc) -> int:
    from hypercorn.asyncio import serve

    from hub.app import create_app

    asyncio.run(serve(create_app(config), hc))  # returns on SIGTERM or SIGINT
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        logging.basicConfig(
            level=config.log_level,
            format='{"at":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
        )
        if args.command == "serve":
            return _serve(config, args.bind, args.workers)
        if args.command == "migrate":
            return asyncio.run(_migrate(config))
        if args.command == "create-admin":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass("password: ")
                if getpass.getpass("again: ") != password:
                    print("bulwark hub: the passwords differ", file=sys.stderr)
                    return 2
            return asyncio.run(_create_admin(config, args.email, password))
        if args.command == "audit" and args.audit_command == "verify":
            return asyncio.run(_audit_verify(config, args.checkpoint))
        if args.command == "audit" and args.audit_command == "checkpoint":
            return asyncio.run(_audit_checkpoint(config, args.out))
    except HubError as exc:
        print(f"bulwark hub: {exc.message}", file=sys.stderr)
        return 2
    return 2
