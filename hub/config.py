"""The hub's one typed, frozen configuration, built once per process.

Sources, later wins: the defaults below → a TOML file (flat keys, the field names) →
`BULWARK_HUB_<FIELD>` environment variables → keyword overrides, layered and type-checked
by `bulwark.settings` (shared with the agent). Unknown keys in any source are refused,
so a typo never silently falls back to a default. Units are in the names.

Raises `ConfigError` (bad input: the operator's file or environment).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import typing
from pathlib import Path
from urllib.parse import urlsplit

from bulwark import settings
from hub.errors import ConfigError

ENV_PREFIX = "BULWARK_HUB_"


@dataclasses.dataclass(frozen=True, slots=True)
class HubConfig:
    data_dir: str = "/var/lib/bulwark-hub"
    # Empty means a SQLite file `hub.sqlite3` in data_dir. postgres://... for scale.
    database_url: str = ""
    bind: str = "127.0.0.1:8443"
    # How browsers reach the hub; decides the session cookie's Secure flag and name.
    public_url: str = "http://127.0.0.1:8443"
    # Empty means a random key kept in data_dir/secret_key (mode 0600).
    secret_key: str = ""
    log_level: str = "INFO"
    # Apply migrations on start. Defaults to on for SQLite, off for PostgreSQL.
    migrate_on_start: str = "auto"  # "auto" | "yes" | "no"

    session_max_age_s: int = 12 * 3600
    login_max_failures: int = 5
    login_window_s: int = 15 * 60
    # argon2id, OWASP cheat sheet: m=19 MiB, t=2, p=1.
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1

    join_token_max_ttl_s: int = 3600
    long_poll_max_s: int = 60
    # An agent counts as connected (Prometheus gauge) while a request of it waits, or
    # for this long after its last request.
    agent_connected_window_s: int = 120
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 64 * 1024 * 1024
    max_metrics_points: int = 5000
    list_max_entries: int = 1_000_000
    # Agents further behind than this many revisions get a full snapshot.
    list_delta_max_revisions: int = 1000

    # The lockout guard at policy save and deploy: a policy that would drop replies from
    # the hub (these addresses, as the protected servers see them, port `hub_port`; 0 means
    # public_url's port) or SSH (`admin_ssh_port`) from `admin_prefixes` is refused.
    # Lists: TOML arrays, or comma-separated in the environment. Empty: no check.
    hub_addresses: tuple[str, ...] = ()
    hub_port: int = 0
    admin_prefixes: tuple[str, ...] = ()
    admin_ssh_port: int = 22

    # Checking and compiling one policy (save or deploy) runs in a worker thread; past
    # this it is refused with 422, and the checker's own work budget ends it soon after.
    policy_check_timeout_s: float = 10.0

    metrics_raw_retention_s: int = 6 * 3600
    metrics_rollup_s: int = 60
    metrics_rollup_retention_s: int = 30 * 86400

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        # WAL (Tortoise's default) with synchronous=NORMAL: no fsync per commit; a power
        # cut can lose the last commits but never corrupts the file.
        return f"sqlite://{Path(self.data_dir) / 'hub.sqlite3'}?synchronous=NORMAL"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite:")

    @property
    def should_migrate_on_start(self) -> bool:
        if self.migrate_on_start == "auto":
            return self.is_sqlite
        return self.migrate_on_start == "yes"

    @property
    def hub_tcp_port(self) -> int:
        """The port agents connect to: `hub_port`, else the one in `public_url`."""
        if self.hub_port:
            return self.hub_port
        url = urlsplit(self.public_url)
        return url.port or (443 if url.scheme == "https" else 80)

    @property
    def secure_cookies(self) -> bool:
        """Plain http on a loopback name is the one place a non-Secure cookie is allowed."""
        url = urlsplit(self.public_url)
        local = url.hostname in {"localhost", "127.0.0.1", "::1"}
        return not (url.scheme == "http" and local)

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = Path(self.data_dir) / "secret_key"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


def load_config(
    toml_path: str | os.PathLike[str] | None = None,
    env: typing.Mapping[str, str] | None = None,
    **overrides: object,
) -> HubConfig:
    """Build the config: defaults → TOML → environment → keyword overrides (tests, flags),
    through the loader shared with the agent (`bulwark.settings`)."""
    config = settings.load(HubConfig, error=ConfigError, env_prefix=ENV_PREFIX, file=toml_path, env=env,
                           flags=overrides, flags_source="override")
    if config.migrate_on_start not in {"auto", "yes", "no"}:
        raise ConfigError("migrate_on_start must be one of auto, yes, no")
    if config.join_token_max_ttl_s > 3600:
        raise ConfigError("join_token_max_ttl_s may not exceed 3600")
    _check_addresses(config)
    return config


def _check_addresses(config: HubConfig) -> None:
    for address in config.hub_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"hub_addresses: {address!r} is not an IP address") from None
    for prefix in config.admin_prefixes:
        try:
            ipaddress.ip_network(prefix, strict=True)
        except ValueError as exc:
            raise ConfigError(f"admin_prefixes: {prefix!r} is not an IP prefix ({exc})") from None
    for name in ("hub_port", "admin_ssh_port"):
        if not 0 <= getattr(config, name) <= 65535 or (name == "admin_ssh_port" and not config.admin_ssh_port):
            raise ConfigError(f"{name} must be a TCP port")
