"""`GET /install.sh` and `GET /packages/<file>`: one command enrols a server, from the hub
alone (a self-hosted hub needs no outside repository).

    curl -fsSL https://hub.example/install.sh?iface=eth0 | sudo BULWARK_JOIN_TOKEN=bwj_... sh

The script downloads the newest .deb in `packages_dir`, checks its SHA-256 (written into the
script), installs it, and runs `bulwark agent enroll` with the token from the environment,
passed on stdin (never argv, so no `ps` shows it). Every value written into the script is
validated first and then shell-quoted: a query string cannot inject a command.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

from quart import Blueprint, Response, request, send_file
from quart_schema import hide

from hub.errors import InvalidInput, NotFound
from hub.web import rt

bp = Blueprint("install", __name__)

PACKAGE = re.compile(r"^bulwark_[0-9][0-9A-Za-z.+~]{0,40}-[0-9A-Za-z.+~]{1,20}_amd64\.deb$")
IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # IFNAMSIZ - 1
HEX64 = re.compile(r"^[0-9a-f]{64}$")

SCRIPT = """#!/bin/sh
# Bulwark agent installer, served by {hub}
# Needs root and BULWARK_JOIN_TOKEN (from the panel) in the environment.
set -eu
HUB={hub}
PACKAGE={package}
SHA256={sha256}
IFACE={iface}
CA_SHA256={ca}
if [ "$(id -u)" != 0 ]; then echo "bulwark install: run as root (sudo)" >&2; exit 1; fi
if [ -z "${{BULWARK_JOIN_TOKEN:-}}" ]; then echo "bulwark install: set BULWARK_JOIN_TOKEN (the panel shows it)" >&2; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --proto '=https,http' -o "$tmp/$PACKAGE" "$HUB/packages/$PACKAGE"
echo "$SHA256  $tmp/$PACKAGE" | sha256sum -c --quiet -
apt-get install -y -qq "$tmp/$PACKAGE" >/dev/null 2>&1 || dpkg -i "$tmp/$PACKAGE"
if [ -n "$IFACE" ] && [ ! -e /etc/bulwark/agent.toml ]; then
    printf 'iface = "%s"\\n' "$IFACE" > /etc/bulwark/agent.toml
fi
set -- --hub "$HUB"
if [ -n "$CA_SHA256" ]; then set -- "$@" --hub-ca-sha256 "$CA_SHA256"; fi
printf '%s' "$BULWARK_JOIN_TOKEN" | BULWARK_AGENT_CONFIG=/etc/bulwark/agent.toml bulwark agent enroll --token-stdin "$@"
unset BULWARK_JOIN_TOKEN
if [ -d /run/systemd/system ]; then systemctl enable --now bulwark-agent.service; fi
echo "bulwark: enrolled with $HUB"
"""


def packages_dir() -> Path:
    config = rt().config
    return Path(config.packages_dir or Path(config.data_dir) / "packages")


def newest_package() -> Path:
    """The .deb the script installs: the newest by modification time among valid names."""
    try:
        found = [p for p in packages_dir().iterdir() if PACKAGE.match(p.name) and p.is_file()]
    except OSError:
        found = []
    if not found:
        raise NotFound("no agent package on this hub: copy make package's .deb into packages_dir")
    return max(found, key=lambda p: p.stat().st_mtime)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def render(hub: str, package: str, sha256: str, iface: str, ca: str) -> str:
    q = shlex.quote
    return SCRIPT.format(hub=q(hub), package=q(package), sha256=q(sha256), iface=q(iface), ca=q(ca))


@bp.get("/install.sh")
@hide
async def install_script() -> Response:
    iface = request.args.get("iface", "")
    if iface and not IFACE.match(iface):
        raise InvalidInput("iface: an interface name (letters, digits, _ . : -, at most 15)")
    if set(request.args) - {"iface"}:
        raise InvalidInput(f"unknown parameter(s): {', '.join(sorted(set(request.args) - {'iface'}))[:200]}")
    config = rt().config
    ca = config.install_ca_sha256
    if ca and not HEX64.match(ca):
        raise InvalidInput("the hub's install_ca_sha256 is not 64 hex digits")  # an operator's config error
    package = newest_package()
    body = render(config.public_url.rstrip("/"), package.name, sha256_of(package), iface, ca)
    return Response(body, content_type="text/x-shellscript; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


@bp.get("/packages/<name>")
@hide
async def package_file(name: str) -> Response:
    if not PACKAGE.match(name):
        raise NotFound("no such package")
    path = packages_dir() / name
    if not path.is_file():
        raise NotFound("no such package")
    return await send_file(path, mimetype="application/vnd.debian.binary-package", as_attachment=True,
                           attachment_filename=name)
