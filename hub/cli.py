"""`bulwark hub ...`: serve, migrate, create-admin, audit verify, audit checkpoint, billing dunning,
backup, restore, rotate-key, erase.

Settings come from `--config FILE` (or BULWARK_HUB_CONFIG) and BULWARK_HUB_* variables.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import logging
import os
import signal
import sys
import threading
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
    admin.add_argument("email", help="the operator's e-mail address (their login)")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    admin.add_argument("--totp", action="store_true",
                       help="turn 2FA on now and print its otpauth:// URI and recovery codes (without it, "
                            "the first sign-in leads to the 2FA set-up: every account needs it)")
    reset = sub.add_parser("reset-link", help="print a single-use password reset link (1 hour) for a user: "
                                              "the fallback where the hub sends no email")
    reset.add_argument("email", help="the user's e-mail address")
    pub = sub.add_parser("publish-templates", help="publish marketplace templates through the publication "
                         "pipeline (needs root and BPF for the guard stage); default: every shipped one")
    pub.add_argument("files", nargs="*", help="template files (TOML); none: rules_dsl/shipped/*.toml")
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit log's keyed hash chain, and that it "
                                  "still reaches the last signed checkpoint")
    verify.add_argument("--checkpoint", metavar="FILE", help="check against this exported checkpoint instead")
    cp = audit_sub.add_parser("checkpoint", help="verify, then sign the newest entry (Ed25519) and export it")
    cp.add_argument("--out", metavar="FILE", help="write the checkpoint here (default: print it)")
    backup = sub.add_parser("backup", help="snapshot the database and key files into the restic repository "
                                           "(backup_repository), then forget snapshots older than 30 days")
    backup.add_argument("--list", action="store_true", help="list the snapshots instead of taking one")
    backup.add_argument("--time", metavar="'YYYY-MM-DD HH:MM:SS'",
                        help="date the snapshot at this time instead of now (restic's --time)")
    restore = sub.add_parser("restore", help="bring a snapshot back into data_dir (what it replaces is kept "
                                             "in data_dir/replaced-<time>)")
    restore.add_argument("snapshot", nargs="?", default="latest", help="a snapshot id, or latest (the default)")
    restore.add_argument("--force", action="store_true",
                         help="restore even though a hub is serving from data_dir")
    bill = sub.add_parser("billing", help="billing tools")
    bill_sub = bill.add_subparsers(dest="billing_command", required=True)
    dunning = bill_sub.add_parser("dunning", help="run the dunning check now (D+3 restricted, D+7 suspended), "
                                  "as the hourly job does")
    dunning.add_argument("--as-of", metavar="TIME", help="judge as if it were this ISO 8601 time (UTC if no zone): "
                         "a staging hub's or a test's moved clock; later than now brings restriction early")
    rotate = sub.add_parser("rotate-key", help="a new key-encryption key for the secrets stored in the "
                                               "database, and every data key rewrapped under it")
    rotate.add_argument("--resume", action="store_true",
                        help="no new key: finish rewrapping after an interrupted rotation")
    rotate.add_argument("--retire", action="store_true",
                        help="then drop the older keys no stored value names any more")
    erase = sub.add_parser("erase", help="run the erasure of closed accounts and tenants that are due now "
                                         "(the daily job), and print the reports")
    erase.add_argument("--list", action="store_true", help="list the erasure requests instead")
    return p


async def _billing_dunning(config, as_of: str | None) -> int:
    import collections
    import datetime as dt

    from hub.models import BillingAccount
    from hub.runtime import Runtime
    from hub.services import billing

    try:
        when = dt.datetime.fromisoformat(as_of) if as_of else dt.datetime.now(dt.timezone.utc)
    except ValueError:
        print(f"bulwark hub: --as-of {as_of!r} is not an ISO 8601 time", file=sys.stderr)
        return 2
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)

    async def run(ctx):
        rt = Runtime.create(config)
        await billing.dunning_job(rt, now=when)
        states = collections.Counter(await BillingAccount.all().values_list("state", flat=True))
        for state, count in sorted(states.items()):
            print(f"billing: {count} tenant(s) {state}")
        return 0

    return await _with_db(config, run)


async def _rotate_key(config, resume: bool, retire: bool) -> int:
    from hub.services import sealing

    async def run(ctx):
        sealer = sealing.Sealer(config.keyring_path)
        await sealing.seal_legacy(sealer)
        out = await sealing.rotate(sealer, resume=resume, retire=retire)
        if out["new"]:
            print(f"new primary key {out['new']}")
        print(f"rewrapped {out['rewrapped']} value(s); {out['pending']} left under older keys")
        if out["retired"]:
            print(f"retired {', '.join(out['retired'])}")
        return 0 if not out["pending"] else 1

    return await _with_db(config, run)


async def _erase(config, list_only: bool) -> int:
    import json

    from hub.models import ErasureRequest
    from hub.runtime import Runtime
    from hub.services import erasure

    async def run(ctx):
        if list_only:
            for r in await ErasureRequest.all().order_by("requested_at"):
                print(f"{r.id}  {r.kind:6}  {r.state:9}  due {r.due_at.isoformat()}")
            return 0
        for report in await erasure.run_due(Runtime.create(config)):
            print(json.dumps(report, sort_keys=True))
        return 0

    return await _with_db(config, run)


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

    from hub.services import sealing

    async def run(ctx):
        await db.migrate(ctx)
        sealed = await sealing.seal_legacy(sealing.Sealer(config.keyring_path))  # as `serve` does at start
        print("migrations applied" + (f"; {sealed} stored secret(s) sealed" if sealed else ""))
        return 0

    return await _with_db(config, run)


async def _create_admin(config, email: str, password: str, totp: bool = False) -> int:
    from hub.runtime import Runtime
    from hub.services import accounts

    async def run(ctx):
        rt = Runtime.create(config)
        user = await accounts.create_user(rt, email, password, platform_admin=True)
        await rt.audit.append(actor="cli", action="user.create_admin", target=user.email)
        print(f"created platform operator {user.email}")
        if not totp:
            print("the first sign-in leads to the 2FA set-up (every account needs a second factor)")
            return 0
        uri, codes = await accounts.enrol_totp(rt, user)
        await rt.audit.append(actor="cli", action="auth.2fa.enable", target=user.email)
        print("2FA is on: add this key to an authenticator app (or open the URI on a phone):")
        print(uri)
        print("recovery codes (each signs in once; keep them safe):")
        print(" ".join(codes))
        return 0

    return await _with_db(config, run)


async def _reset_link(config, email: str) -> int:
    from hub.runtime import Runtime
    from hub.services import resets

    async def run(ctx):
        link = await resets.issue_link(Runtime.create(config), email)
        print(link)
        print("hand it over by a channel you trust; it works once, within an hour", file=sys.stderr)
        return 0

    return await _with_db(config, run)


async def _publish_templates(config, files: list[str]) -> int:
    """Each file through `marketplace.publish` as the CLI (a platform operator): a version
    already published is skipped, a refused one is reported and makes the exit status 1."""
    from pathlib import Path

    from hub.errors import Conflict
    from hub.runtime import Runtime
    from hub.services import marketplace
    from hub.services.scope import Principal

    paths = [Path(f) for f in files] or sorted((Path(__file__).resolve().parents[1] / "rules_dsl" / "shipped")
                                               .glob("*.toml"))
    cli = Principal(actor="cli", is_platform_admin=True)

    async def run(ctx):
        rt, bad = Runtime.create(config), 0
        for path in paths:
            try:
                v = await marketplace.publish(rt, cli, path.read_text(encoding="utf-8"), path.name)
                print(f"{path.name}: published version {v.version} ({v.report['vectors']} vectors)")
            except Conflict as exc:
                print(f"{path.name}: {exc.message}")
            except HubError as exc:
                bad = 1
                print(f"{path.name}: {exc.message}", file=sys.stderr)
        return bad

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


def hypercorn_config(config, bind: str | None = None, workers: int = 1):
    """Hypercorn's settings for `serve`: the bind, and TLS 1.3 only when the hub has a
    certificate (Hypercorn's own minimum is 1.2; every client the hub has, agents and
    browsers, speaks 1.3). Raises ConfigError when the files do not load."""
    import ssl

    from hypercorn.config import Config as HypercornConfig

    class Config(HypercornConfig):
        def create_ssl_context(self) -> ssl.SSLContext | None:
            context = super().create_ssl_context()
            if context is not None:
                context.minimum_version = ssl.TLSVersion.TLSv1_3
            return context

    hc = Config()
    hc.bind = [bind or config.bind]
    hc.workers = workers  # Hypercorn sets SO_REUSEPORT on the socket when above 1
    hc.accesslog = "-"
    if config.tls_certfile:
        hc.certfile, hc.keyfile = config.tls_certfile, config.tls_keyfile
        try:
            hc.create_ssl_context()  # now, so a bad file is one line, not a traceback per worker
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_certfile/tls_keyfile: {exc}") from None
    return hc


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


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _serve(config, bind: str | None, workers: int) -> int:
    """Serve in this process, or in `workers` forked processes each binding the same port
    with SO_REUSEPORT (the kernel spreads connections); this one forwards SIGTERM and
    SIGINT to them and returns the worst exit status (128 + the signal for a worker a
    signal killed)."""
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and config.is_sqlite:
        raise ConfigError("--workers above 1 needs PostgreSQL (database_url): an agent waiting on one process "
                          "is woken by a change made on another through LISTEN/NOTIFY")
    hc = hypercorn_config(config, bind, workers)
    _check_bind(hc)
    if workers == 1:
        return _serve_here(config, hc)
    children: list[int] = []

    def forward(signum, _frame) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    # Blocked while forking: a signal then waits until every worker exists (and is forwarded
    # to all), and a worker takes it only once its own handler is in place; before, a worker
    # still starting ran this process's `forward` instead, ignored the signal and served on.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        signal.signal(signal.SIGTERM, forward)
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
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    return max(128 - code if code < 0 else code for code in codes)


def _check_bind(hc) -> None:
    """Bind once before anything starts: Hypercorn binds only after the app's startup, and
    a taken port then left a traceback and a process that served nothing. Raises ConfigError."""
    try:
        sockets = hc.create_sockets()
    except OSError as exc:
        why = "the port is taken (another process listens there)" if exc.errno == errno.EADDRINUSE \
            else (exc.strerror or str(exc)).lower()
        raise ConfigError(f"cannot listen on {' '.join(hc.bind)}: {why}") from None
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


def _serve_here(config, hc) -> int:
    """Serve until SIGTERM or SIGINT, then stop within Hypercorn's graceful timeout and
    return 0, whenever the signal comes: one during the start-up (opening the database,
    migrating) is kept and acted on once serving."""
    stopping = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stopping.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked in a worker until here (_serve)

    from hub import backup, event_loop
    from hub.app import create_app

    from hub.gc_tuning import tune_for_serving

    with backup.serving(config):  # `restore` refuses while this is held
        app = create_app(config)
        tune_for_serving()
        event_loop.run(_serve_until_stopped(app, hc, stopping))
    return 0


async def _serve_until_stopped(app, hc, stopping: threading.Event) -> None:
    """Hypercorn until a stop signal (or one `stopping` caught before the loop ran). The
    long-polls and event streams are told first (`stop_waiting`): Hypercorn's graceful
    wait would otherwise run out on requests that wait up to a minute, then cut them."""
    from hypercorn.asyncio import serve

    from hub.app import stop_waiting

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if stopping.is_set():
        stop.set()

    async def shutdown_trigger() -> None:
        await stop.wait()
        stop_waiting(app)

    await serve(app, hc, shutdown_trigger=shutdown_trigger)


def _backup(config, list_only: bool, at: str | None) -> int:
    from hub import backup

    if not list_only:
        summary = backup.backup(config, at=at)
        print(f"snapshot {summary.get('snapshot_id', '?')[:8]} saved")
    for snap in backup.snapshots(config):
        print(f"{snap['short_id']}  {snap['time']}")
    return 0


def _has_terminal() -> bool:
    """Whether getpass can prompt: it reads /dev/tty, and without one (systemd, cron, a
    pipeline in CI) it would warn and read stdin, or die on EOF."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


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
            elif not _has_terminal():
                print("bulwark hub: no terminal to ask for the password on: pipe it in with --password-stdin",
                      file=sys.stderr)
                return 2
            else:
                password = getpass.getpass("password: ")
                if getpass.getpass("again: ") != password:
                    print("bulwark hub: the passwords differ", file=sys.stderr)
                    return 2
            return asyncio.run(_create_admin(config, args.email, password, args.totp))
        if args.command == "reset-link":
            return asyncio.run(_reset_link(config, args.email))
        if args.command == "publish-templates":
            return asyncio.run(_publish_templates(config, args.files))
        if args.command == "audit" and args.audit_command == "verify":
            return asyncio.run(_audit_verify(config, args.checkpoint))
        if args.command == "audit" and args.audit_command == "checkpoint":
            return asyncio.run(_audit_checkpoint(config, args.out))
        if args.command == "billing":
            return asyncio.run(_billing_dunning(config, args.as_of))
        if args.command == "backup":
            return _backup(config, args.list, args.time)
        if args.command == "rotate-key":
            return asyncio.run(_rotate_key(config, args.resume, args.retire))
        if args.command == "erase":
            return asyncio.run(_erase(config, args.list))
        if args.command == "restore":
            from hub import backup

            aside = backup.restore(config, args.snapshot, force=args.force)
            print(f"restored {args.snapshot}; the replaced files are in {aside}")
            return 0
    except HubError as exc:
        print(f"bulwark hub: {exc.message}", file=sys.stderr)
        return 2
    return 2
