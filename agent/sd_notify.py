"""Tell systemd the agent is ready (Type=notify), without a libsystemd dependency.

systemd passes NOTIFY_SOCKET (a path, or "@name" for the abstract namespace); one datagram
"READY=1" on it says protections are applied, so `systemctl start` (and an upgrade's
restart) returns only once the server is protected. Outside systemd it does nothing.
"""
from __future__ import annotations

import os
import socket


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send one notification; False when not under systemd or the socket refuses it."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True
