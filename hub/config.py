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
    # The .deb files GET /packages/ serves and /install.sh installs (make package's output).
    # Empty means data_dir/packages.
    packages_dir: str = ""
    # The SHA-256 (hex, of its DER) of the CA that signed the hub's certificate: the install
    # script passes it to `bulwark agent enroll --hub-ca-sha256`. Empty: the system's CAs.
    install_ca_sha256: str = ""
    # TLS served by the hub itself (TLS 1.3 only): PEM certificate chain and key. Empty:
    # plain http, for loopback or behind a TLS-terminating proxy (docs/hub.md).
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # The CA that signed tls_certfile (PEM), whose SHA-256 the panel's enrolment command
    # pins. Empty: the last certificate of tls_certfile's chain, if it has more than one.
    tls_ca_certfile: str = ""
    # The Ed25519 key that signs Plans for agents (PKCS#8 PEM). Empty means
    # data_dir/plan_signing_key, made on first use (mode 0600). Hubs sharing a database
    # must share this file: agents pin its public key at enrolment.
    plan_signing_key_file: str = ""
    log_level: str = "INFO"
    # Apply migrations on start. Defaults to on for SQLite, off for PostgreSQL.
    migrate_on_start: str = "auto"  # "auto" | "yes" | "no"

    session_max_age_s: int = 12 * 3600
    # "2FA for every account" (docs/privacy.md): a user without TOTP gets a session that can
    # only set it up, sign out, export or close the account. On only for development.
    allow_accounts_without_2fa: bool = False
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
    # Each agent's metrics quota (rows = points + top sources): a bucket of this many rows,
    # refilled at this rate; a batch that does not fit is a 429 with Retry-After.
    metrics_agent_rows_per_s: int = 500
    metrics_agent_burst_rows: int = 50_000
    # Live metrics streams (SSE) one token or user may hold at once, per hub process.
    metrics_streams_per_principal: int = 4
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
    # Reverse proxies (addresses or prefixes) whose X-Forwarded-For names the client; from
    # any other peer the header is ignored (hub.callers). Empty: the peer is the client.
    trusted_proxies: tuple[str, ...] = ()

    # Checking and compiling one policy (save or deploy) runs in a worker thread; past
    # this it is refused with 422, and the checker's own work budget ends it soon after.
    policy_check_timeout_s: float = 10.0

    metrics_raw_retention_s: int = 6 * 3600
    metrics_rollup_s: int = 60
    metrics_rollup_retention_s: int = 30 * 86400

    # Billing through Stripe: off without a key (a self-hosted hub bills nobody).
    stripe_api_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""  # tests point the real library at a fake on loopback
    stripe_price_lookup_key: str = "bulwark-agent-monthly"
    billing_trial_days: int = 7

    # The AI assistant (hub/services/assistant.py, docs/assistant.md): off without a key,
    # and the rest of the hub works. No secrets-encryption module exists yet, so the key is
    # plain config (a file of mode 0600, or the environment).
    anthropic_api_key: str = ""
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_base_url: str = ""  # tests point the real library at a fake on loopback
    assistant_max_repairs: int = 2
    assistant_max_prompt_chars: int = 4000
    assistant_max_output_tokens: int = 2048
    # Per tenant, shared by every hub process (rows of assistant_usage): requests per clock
    # hour, and tokens (input + output, from the API's `usage`) per UTC day; past either, a
    # 429 that says which.
    assistant_requests_per_hour: int = 30
    assistant_tokens_per_day: int = 200_000

    # Replay (policy against a capture, hub/services/policies.py): the largest capture accepted.
    replay_max_capture_bytes: int = 16 * 1024 * 1024
    # Agent captures (hub/services/captures.py): the largest upload, and how long kept.
    capture_max_bytes: int = 16 * 1024 * 1024
    capture_retention_s: int = 7 * 86400

    # Alerts leave through the outbox (hub/services/outbox.py). Email: an SMTP relay,
    # STARTTLS unless turned off (smtp_cafile: a CA bundle to trust instead of the system's).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_cafile: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    mail_from: str = "bulwark@localhost"
    outbox_max_attempts: int = 8
    outbox_backoff_initial_s: int = 30
    webhook_timeout_s: int = 10
    # Webhooks to http:// or to loopback/private addresses (a lab, or tests): off, since
    # otherwise a tenant could make the hub call into the hub's own network.
    webhook_allow_private: bool = False
    # Attack surges: drop rules' packets per second over this window, checked this often.
    alerts_surge_window_s: int = 60
    alerts_surge_interval_s: int = 60

    # `bulwark hub backup` (hub/backup.py): a restic repository (a path or a restic URL) and
    # the file holding its password (restic reads it itself; never on a command line).
    backup_repository: str = ""
    backup_password_file: str = ""
    # The longest one restic or pg_dump run may take.
    backup_timeout_s: int = 3600

    # The keyring of the key-encryption keys that seal the secrets stored in the database
    # (hub.services.sealing). Empty: data_dir/secrets_keyring (0600). Keep it off the
    # database's disk where you can (BULWARK_HUB_KEYRING_FILE).
    keyring_file: str = ""

    # Retention per kind of data (hub.services.retention), enforced every
    # retention_interval_s. Raw metrics and rollups: metrics_*_retention_s above. The
    # dropped-packet samples hold attackers' (and anyone's) addresses: they go first.
    retention_sample_addresses_s: int = 3600
    retention_expired_sessions_s: int = 0  # a session row goes once it has expired
    retention_login_failures_s: int = 86400
    retention_outbox_s: int = 30 * 86400  # sent and dead messages (dead letters replayable until then)
    retention_interval_s: int = 3600
    retention_assistant_usage_s: int = 90 * 86400  # the assistant's per-window use (no content)
    # Closed accounts and tenants (hub.services.erasure): erased this long after closing,
    # by a job that runs every erasure_interval_s; together at most 30 days (the policy).
    erasure_delay_s: int = 0
    erasure_interval_s: int = 86400
    # Billing records of a closed tenant, minimised, kept as the law requires (10 years).
    retention_billing_records_s: int = 3653 * 86400

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        # WAL (Tortoise's default) with synchronous=NORMAL: no fsync per commit; a power
        # cut can lose the last commits but never corrupts the file.
        return f"sqlite://{Path(self.data_dir) / 'hub.sqlite3'}?synchronous=NORMAL"

    @property
    def keyring_path(self) -> Path:
        return Path(self.keyring_file) if self.keyring_file else Path(self.data_dir) / "secrets_keyring"

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
        from hub import files

        return files.secret_key(Path(self.data_dir))


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
    if config.metrics_agent_rows_per_s < 1 or config.metrics_agent_burst_rows < config.max_metrics_points:
        raise ConfigError("metrics_agent_rows_per_s must be at least 1, metrics_agent_burst_rows at least "
                          "max_metrics_points (or no full batch could ever pass)")
    if config.metrics_streams_per_principal < 1:
        raise ConfigError("metrics_streams_per_principal must be at least 1")
    if config.backup_timeout_s < 1:
        raise ConfigError("backup_timeout_s must be at least 1")
    _check_retention(config)
    if config.join_token_max_ttl_s > 3600:
        raise ConfigError("join_token_max_ttl_s may not exceed 3600")
    if bool(config.tls_certfile) != bool(config.tls_keyfile):
        raise ConfigError("tls_certfile and tls_keyfile go together: set both, or neither")
    if config.assistant_max_repairs < 0 or config.assistant_max_repairs > 5:
        raise ConfigError("assistant_max_repairs must be between 0 and 5")
    _check_addresses(config)
    return config


ERASURE_PROMISE_S = 30 * 86400


def _check_retention(config: HubConfig) -> None:
    """The retention settings keep the published promises: sampled addresses expire no later
    than the raw metrics, a closed account is erased within 30 days."""
    for name in ("retention_sample_addresses_s", "retention_login_failures_s", "retention_outbox_s",
                 "retention_interval_s", "erasure_interval_s", "retention_billing_records_s"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if config.retention_expired_sessions_s < 0 or config.erasure_delay_s < 0:
        raise ConfigError("retention_expired_sessions_s and erasure_delay_s may not be negative")
    if config.retention_sample_addresses_s > config.metrics_raw_retention_s:
        raise ConfigError("retention_sample_addresses_s may not exceed metrics_raw_retention_s: "
                          "the addresses in samples expire first")
    if config.retention_assistant_usage_s < 86400:
        raise ConfigError("retention_assistant_usage_s must be at least a day (the token cap's window)")
    if config.retention_login_failures_s < config.login_window_s:
        raise ConfigError("retention_login_failures_s must be at least login_window_s (or throttling forgets)")
    if config.erasure_delay_s + config.erasure_interval_s > ERASURE_PROMISE_S:
        raise ConfigError("erasure_delay_s + erasure_interval_s may not exceed 30 days (the privacy policy)")


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
    for prefix in config.trusted_proxies:
        try:
            ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {prefix!r} is not an IP address or prefix") from None
    for name in ("hub_port", "admin_ssh_port"):
        if not 0 <= getattr(config, name) <= 65535 or (name == "admin_ssh_port" and not config.admin_ssh_port):
            raise ConfigError(f"{name} must be a TCP port")
