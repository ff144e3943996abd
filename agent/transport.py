"""How the agent reaches its hub: https only (unless `allow_insecure_http`), verified
against `ca_file` or the default bundle, optionally pinned to one CA by its SHA-256.

A pin narrows the trust anchors to the one CA certificate (from `ca_file`, else the
default bundle) whose DER bytes hash to `hub_ca_sha256`, before any connection: a
certificate from any other CA fails the handshake, so the credential is never sent to
it. `openssl x509 -in ca.pem -outform DER | sha256sum` gives the pin.
"""
from __future__ import annotations

import hashlib
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from agent.config import AgentConfig, ca_pin
from agent.errors import ConfigError

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.S)


def check_url(config: AgentConfig, url: str) -> None:
    """Raises ConfigError unless `url` is a hub URL this config lets the agent use."""
    scheme = urlsplit(url).scheme
    if scheme == "https":
        return
    if scheme == "http":
        if config.allow_insecure_http:
            return
        raise ConfigError(f"refusing the plain-http hub {url}: its answers and the agent credential would "
                          "travel unprotected; use https, or set allow_insecure_http = true (tests, demos)")
    raise ConfigError(f"hub URL {url!r}: expected https://host[:port]")


def _bundle(config: AgentConfig) -> tuple[str, str]:
    if config.ca_file:
        path = config.ca_file
    else:
        import certifi  # httpx's own default bundle

        path = certifi.where()
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return path, f.read()
    except OSError as exc:
        raise ConfigError(f"ca_file {path}: {exc.strerror}") from None


def pinned_context(config: AgentConfig) -> ssl.SSLContext:
    """A client context trusting only the CA pinned by `hub_ca_sha256`. Raises ConfigError."""
    pin = ca_pin(config.hub_ca_sha256 or "")
    path, text = _bundle(config)
    found = [der for der in (ssl.PEM_cert_to_DER_cert(block) for block in PEM_CERT.findall(text))
             if hashlib.sha256(der).hexdigest() == pin]
    if not found:
        raise ConfigError(f"hub_ca_sha256: no CA certificate in {path} has SHA-256 {pin}")
    context = ssl.create_default_context(cadata=found[0])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(config: AgentConfig, url: str) -> dict[str, Any]:
    """httpx client arguments for talking to the hub at `url`. Raises ConfigError."""
    check_url(config, url)
    if config.hub_ca_sha256:
        verify: Any = pinned_context(config)
    elif config.ca_file:
        try:
            verify = ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ca_file {config.ca_file}: {exc}") from None
    else:
        verify = True  # httpx's default bundle
    return {"verify": verify, "timeout": config.http_timeout_s}
