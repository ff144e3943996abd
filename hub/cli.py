"""`bulwark hub ...`: serve, migrate, create-admin, audit verify.

Settings come from `--config FILE` (or BULWARK_HUB_CONFIG) and BULWARK_HUB_* variables.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from hub.config import load_config
from hub.errors import HubError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulwark hub", description="run the central hub")
    p.add_argument("--config", default=os.environ.get("BULWARK_HUB_CONFIG"), help="TOML settings file")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the hub with Hypercorn")
    serve.add_argument("--bind", help="host:port (overrides the setting)")
    serve.add_argument("--workers", type=int, default=1)
    sub.add_parser("migrate", help="apply database migrations")
    admin = sub.add_parser("create-admin", help="create the first platform operator")
    admin.add_argument("email")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the audit log's hash chain")
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


async def _audit_verify(config) -> int:
    from hub.services import audit

    async def run(ctx):
        checked, problems = await audit.verify()
        for problem in problems:
            print(f"audit: {problem}")
        print(f"audit: {checked} entries checked, {len(problems)} problem(s)")
        return 1 if problems else 0

    return await _with_db(config, run)


def _serve(config, bind: str | None, workers: int) -> int:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    from hub.app import create_app

    hc = HypercornConfig()
    hc.bind = [bind or config.bind]
    hc.workers = workers
    hc.accesslog = "-"
    asyncio.run(serve(create_app(config), hc))
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
            return asyncio.run(_audit_verify(config))
    except HubError as exc:
        print(f"bulwark hub: {exc.message}", file=sys.stderr)
        return 2
    return 2
