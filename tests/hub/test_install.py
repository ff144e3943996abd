"""`GET /install.sh` and `GET /packages/<file>`: the script a server pipes into sh. Hostile
input: every query value is validated and shell-quoted; package names cannot leave
packages_dir."""
from __future__ import annotations

import hashlib
import shlex
import subprocess

import pytest

from hub.blueprints.install import render
from tests.hub.harness import HubHarness

DEB = "bulwark_0.1.0-2_amd64.deb"


def hub_with_package(tmp_path) -> HubHarness:
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / DEB).write_bytes(b"a package")
    (packages / "notes.txt").write_text("not served")
    return HubHarness(tmp_path, packages_dir=str(packages), public_url="https://hub.example")


async def test_the_script_pins_the_package_and_reads_the_token_from_the_environment(tmp_path):
    async with hub_with_package(tmp_path) as hub:
        r = await hub.client().get("/install.sh?iface=eth0")
        assert r.status_code == 200
        script = await r.get_data(as_text=True)
        assert f"SHA256={hashlib.sha256(b'a package').hexdigest()}" in script
        assert f"PACKAGE={DEB}" in script and "HUB=https://hub.example" in script and "IFACE=eth0" in script
        assert "--token-stdin" in script and "BULWARK_JOIN_TOKEN" in script
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
        r = await hub.client().get(f"/packages/{DEB}")
        assert r.status_code == 200 and await r.get_data() == b"a package"


@pytest.mark.parametrize("query", ["iface=eth0;reboot", "iface=$(id)", "iface=%27%3Bid%3B%27", "iface=" + "e" * 16,
                                   "iface=a%0Ab", "iface=`id`", "other=1", "iface=eth0&x=" + "y" * 5000])
async def test_hostile_queries_are_400(tmp_path, query):
    async with hub_with_package(tmp_path) as hub:
        r = await hub.client().get(f"/install.sh?{query}")
        assert r.status_code == 400


@pytest.mark.parametrize("name", ["notes.txt", "..%2F..%2Fetc%2Fpasswd", "bulwark_0.1.0-3_amd64.deb",
                                  "bulwark_..%2F1-1_amd64.deb", "x" * 5000])
async def test_only_present_well_named_packages_are_served(tmp_path, name):
    async with hub_with_package(tmp_path) as hub:
        r = await hub.client().get(f"/packages/{name}")
        assert r.status_code == 404


async def test_no_package_is_a_clear_404(tmp_path):
    async with HubHarness(tmp_path, packages_dir=str(tmp_path / "none")) as h:
        r = await h.client().get("/install.sh")
        assert r.status_code == 404
        assert "make package" in await r.get_data(as_text=True)


@pytest.mark.parametrize("value", ["'; rm -rf / #", "$(reboot)", "`id`", "a b\nc", "\"quoted\""])
def test_render_quotes_whatever_it_is_given(value):
    """Defence in depth: even a value that escaped validation is one shell word."""
    script = render(value, value, value, value, value)
    assert f"HUB={shlex.quote(value)}" in script
    out = subprocess.run(["sh", "-c", script.split("set -eu\n", 1)[1].split("if [", 1)[0] + 'printf "%s" "$IFACE"'],
                         capture_output=True, text=True)
    assert out.stdout == value
