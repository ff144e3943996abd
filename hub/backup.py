"""`bulwark hub backup` / `restore`: a consistent snapshot of the hub into a restic repository.

What a snapshot holds: the database (SQLite through its online backup API, so a serving
hub's file is copied page-consistent; PostgreSQL through `pg_dump --format=custom`) and
the key files of data_dir (`KEY_FILES`, those present). They are staged in
data_dir/.backup (a fixed path, so restic finds the previous snapshot as parent) and handed
to restic, which encrypts, deduplicates and never rewrites a snapshot. After every backup
the retention the privacy policy promises is applied: `forget --keep-within 30d --prune`
(restic counts the 30 days back from the newest snapshot, which a daily timer keeps recent).

restic reads the repository's password from `backup_password_file` (RESTIC_PASSWORD_FILE);
no password, restic's nor the database's, is ever on a command line. Every subprocess has
a timeout and no shell. Errors: `ConfigError` (settings, arguments, a serving hub),
`Unavailable` (restic, pg_dump or the repository failed).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from hub import files
from hub.config import HubConfig
from hub.errors import ConfigError, Unavailable

KEY_FILES = ("secret_key", "plan_signing_key", "audit_key", "audit_signing_key", "secrets_keyring")
SQLITE_NAME = "hub.sqlite3"
PGDUMP_NAME = "hub.pgdump"
TAG = "bulwark-hub"
KEEP_WITHIN = "30d"
LOCK_NAME = "hub.lock"
_SNAPSHOT = re.compile(r"latest|[0-9a-f]{8,64}")


# --- the lock a serving hub holds ---------------------------------------------------------

@contextlib.contextmanager
def serving(config: HubConfig) -> Iterator[None]:
    """Held (shared) while a hub serves from data_dir, so that `restore` can see it."""
    fd = _lock_fd(config)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"a restore into {config.data_dir} is under way") from None
        yield
    finally:
        os.close(fd)


def _lock_fd(config: HubConfig) -> int:
    path = files.private_dir(Path(config.data_dir)) / LOCK_NAME
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


# --- restic --------------------------------------------------------------------------------

def _restic_env(config: HubConfig) -> dict[str, str]:
    if not config.backup_repository:
        raise ConfigError("backup_repository is not set (a path or a restic repository URL)")
    if not config.backup_password_file:
        raise ConfigError("backup_password_file is not set (a file holding the repository's password)")
    if not os.access(config.backup_password_file, os.R_OK):
        raise ConfigError(f"backup_password_file: cannot read {config.backup_password_file}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env |= {"RESTIC_REPOSITORY": config.backup_repository, "RESTIC_PASSWORD_FILE": config.backup_password_file}
    return env


def _run(argv: Sequence[str], *, env: dict[str, str], timeout_s: int, cwd: Path | None = None,
         what: str) -> str:
    """Run one program (no shell); its stdout, or `Unavailable` with the end of its stderr."""
    try:
        done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise ConfigError(f"{argv[0]} is not installed (needed for {what})") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what}: {argv[0]} did not finish within {timeout_s} s") from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise Unavailable(f"{what} failed ({argv[0]} exit {done.returncode}): {' / '.join(tail)}")
    return done.stdout


def _restic(config: HubConfig, *args: str, what: str, cwd: Path | None = None) -> str:
    return _run(["restic", "--no-cache", *args], env=_restic_env(config), timeout_s=config.backup_timeout_s,
                cwd=cwd, what=what)


def _ensure_repository(config: HubConfig) -> None:
    """Make the repository on first use; a wrong password stays an error, not a new repository."""
    try:
        _restic(config, "cat", "config", what="opening the repository")
    except Unavailable as missing:
        try:
            _restic(config, "init", what="creating the repository")
        except Unavailable:
            raise missing from None


# --- backup --------------------------------------------------------------------------------

def backup(config: HubConfig, *, at: str | None = None) -> dict:
    """Snapshot the hub, then forget snapshots beyond the retention. `at` ("YYYY-MM-DD
    HH:MM:SS", restic's --time) dates the snapshot otherwise than now. Returns restic's
    summary of the snapshot."""
    if at is not None:
        try:
            dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise ConfigError(f"--time: {at!r} is not YYYY-MM-DD HH:MM:SS") from None
    _restic_env(config)  # settings first, before any work
    _ensure_repository(config)
    data_dir = files.private_dir(Path(config.data_dir))
    stage = data_dir / ".backup"
    shutil.rmtree(stage, ignore_errors=True)
    files.private_dir(stage)
    try:
        if config.is_sqlite:
            _sqlite_copy(_sqlite_path(config), stage / SQLITE_NAME)
        else:
            _pg_dump(config, stage / PGDUMP_NAME)
        for name in KEY_FILES:
            if (data_dir / name).is_file():
                shutil.copy2(data_dir / name, stage / name)
        args = ["backup", "--json", "--host", TAG, "--tag", TAG]
        if at is not None:
            args += ["--time", at]
        out = _restic(config, *args, ".", cwd=stage, what="the backup")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    summary = next((m for m in map(_json_line, out.splitlines()) if m.get("message_type") == "summary"), {})
    forget(config)
    return summary


def forget(config: HubConfig) -> None:
    """The promised retention: snapshots older than 30 days (before the newest) are gone."""
    _restic(config, "forget", "--tag", TAG, "--group-by", "", "--keep-within", KEEP_WITHIN, "--prune",
            what="applying the retention")


def snapshots(config: HubConfig) -> list[dict]:
    """The hub's snapshots, oldest first: id, short_id, time."""
    out = _restic(config, "snapshots", "--json", "--tag", TAG, what="listing the snapshots")
    return [{"id": s["id"], "short_id": s.get("short_id", s["id"][:8]), "time": s["time"]}
            for s in json.loads(out or "[]")]


def _json_line(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _sqlite_path(config: HubConfig) -> Path:
    url = urlsplit(config.db_url)
    return Path(unquote(url.netloc + url.path))


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while the hub writes."""
    if not source.is_file():
        raise ConfigError(f"no database at {source}: nothing to back up")
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("pragma journal_mode=delete")  # one self-contained file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise Unavailable(f"copying the SQLite database: {exc}") from None
    finally:
        src.close()
    os.chmod(target, 0o600)


def _pg_args(config: HubConfig) -> tuple[str, dict[str, str]]:
    """The URL without its password (which goes in PGPASSWORD, off the command line)."""
    url = urlsplit(config.database_url)
    env = dict(os.environ)
    netloc = url.netloc
    if url.password is not None:
        env["PGPASSWORD"] = unquote(url.password)
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    return urlunsplit(("postgresql", netloc, url.path, url.query, "")), env


def _pg_dump(config: HubConfig, target: Path) -> None:
    url, env = _pg_args(config)
    _run(["pg_dump", "--format=custom", f"--file={target}", f"--dbname={url}"], env=env,
         timeout_s=config.backup_timeout_s, what="dumping the PostgreSQL database")
    os.chmod(target, 0o600)


# --- restore -------------------------------------------------------------------------------

def restore(config: HubConfig, snapshot: str = "latest", *, force: bool = False) -> Path:
    """Bring a snapshot back into data_dir. What it replaces is moved to
    data_dir/replaced-<UTC time> (returned), never deleted. Refuses while a hub serves
    from data_dir (the lock `serving` holds), unless `force`."""
    if not _SNAPSHOT.fullmatch(snapshot):
        raise ConfigError(f"snapshot: {snapshot!r} is neither 'latest' nor a snapshot id (hex)")
    _restic_env(config)
    data_dir = files.private_dir(Path(config.data_dir))
    fd = _lock_fd(config)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise ConfigError(f"a hub is serving from {data_dir}: stop it first (or --force)") from None
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as tmp:
            target = Path(tmp)
            _restic(config, "restore", snapshot, "--target", str(target), what="the restore")
            return _swap_in(config, data_dir, target)
    finally:
        os.close(fd)


def _swap_in(config: HubConfig, data_dir: Path, restored: Path) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = files.private_dir(data_dir / f"replaced-{stamp}")
    names = [n for n in (SQLITE_NAME, PGDUMP_NAME, *KEY_FILES) if (restored / n).is_file()]
    if not names:
        raise Unavailable("the snapshot holds no hub files")
    if (restored / PGDUMP_NAME).is_file() and config.is_sqlite or \
            (restored / SQLITE_NAME).is_file() and not config.is_sqlite:
        raise ConfigError("the snapshot's database kind (SQLite or PostgreSQL) is not this hub's")
    if config.is_sqlite:
        db = _sqlite_path(config)
        for suffix in ("", "-wal", "-shm"):
            old = db.with_name(db.name + suffix)
            if old.exists():
                os.replace(old, aside / old.name)
        os.replace(restored / SQLITE_NAME, db)
        os.chmod(db, 0o600)
    else:
        _pg_dump(config, aside / PGDUMP_NAME)
        url, env = _pg_args(config)
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={url}",
              str(restored / PGDUMP_NAME)], env=env, timeout_s=config.backup_timeout_s,
             what="restoring the PostgreSQL database")
    for name in KEY_FILES:
        if (restored / name).is_file():
            if (data_dir / name).exists():
                os.replace(data_dir / name, aside / name)
            os.replace(restored / name, data_dir / name)
            os.chmod(data_dir / name, 0o600)
    return aside
