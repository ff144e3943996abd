"""The command the panel shows to enrol a server: the join token goes in on stdin (a
shell builtin prints it, so it is never any process's argv, which `ps` shows to every
user), the hub URL, and the pin of the hub's CA when the hub serves TLS itself.

The pin is the SHA-256 of the CA certificate's DER bytes, as `bulwark agent enroll
--hub-ca-sha256` takes it (docs/hub.md, "TLS").
"""
from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.config import HubConfig


def ca_pin(config: HubConfig) -> str | None:
    """The hub CA's SHA-256 (hex), or None: no TLS here, or no CA certificate known.
    A file that cannot be read or parsed gives None (the command then has no pin, and the
    agent falls back to its CA bundle), never an error page."""
    source = config.tls_ca_certfile or config.tls_certfile
    if not source:
        return None
    try:
        chain = x509.load_pem_x509_certificates(Path(source).read_bytes())
    except (OSError, ValueError):
        return None
    if not config.tls_ca_certfile and len(chain) < 2:
        return None  # only the hub's own certificate: its CA is not in the file
    return hashlib.sha256(chain[-1].public_bytes(Encoding.DER)).hexdigest()


def enrol_command(config: HubConfig, join_token: str) -> str:
    """The copy-paste command, one line per step (the last runs the agent under systemd)."""
    hub_url = config.public_url.rstrip("/")
    flags = ["--hub", hub_url, "--token-stdin"]
    pin = ca_pin(config)
    if pin:
        flags += ["--hub-ca-sha256", pin]
    if hub_url.startswith("http://"):
        flags.append("--allow-insecure-http")
    enrol = f"printf '%s\\n' {shlex.quote(join_token)} | sudo bulwark agent enroll {shlex.join(flags)}"
    return enrol + "\nsudo systemctl enable --now bulwark-agent"
