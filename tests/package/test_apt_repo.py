"""`make repo`: the layout apt reads, with Release signed (InRelease and Release.gpg verify
against the exported key) and every index listed with its hash."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("apt_repo", ROOT / "packaging" / "apt_repo.py")
apt_repo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(apt_repo)

pytestmark = pytest.mark.skipif(not (shutil.which("gpg") and shutil.which("dpkg-deb")), reason="gpg/dpkg-deb missing")


@pytest.fixture
def gnupg(tmp_path, monkeypatch):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "repo@bulwark.invalid",
                    "ed25519", "sign", "1d"], check=True, capture_output=True, timeout=60)
    yield "repo@bulwark.invalid"
    subprocess.run(["gpgconf", "--kill", "all"], capture_output=True, env={**os.environ, "GNUPGHOME": str(home)})


def tiny_deb(tmp_path: Path) -> Path:
    root = tmp_path / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: bulwark\nVersion: 0.1.0-1\nArchitecture: amd64\n"
                                             "Maintainer: t <t@t.invalid>\nDescription: test\n")
    out = tmp_path / "bulwark_0.1.0-1_amd64.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)], check=True, capture_output=True)
    return out


def test_a_signed_repository_apt_can_read(tmp_path, gnupg):
    repo = tmp_path / "repo"
    dist = apt_repo.build(repo, [tiny_deb(tmp_path)], gnupg)
    packages = (dist / "main" / "binary-amd64" / "Packages").read_text()
    assert "Package: bulwark" in packages and "Filename: pool/main/bulwark_0.1.0-1_amd64.deb" in packages
    sha = hashlib.sha256((repo / "pool/main/bulwark_0.1.0-1_amd64.deb").read_bytes()).hexdigest()
    assert f"SHA256: {sha}" in packages
    release = (dist / "Release").read_text()
    index_sha = hashlib.sha256((dist / "main/binary-amd64/Packages").read_bytes()).hexdigest()
    assert f" {index_sha} " in release and "Suite: stable" in release
    subprocess.run(["gpg", "--batch", "--verify", str(dist / "InRelease")], check=True, capture_output=True)
    subprocess.run(["gpg", "--batch", "--verify", str(dist / "Release.gpg"), str(dist / "Release")], check=True,
                   capture_output=True)
    assert "BEGIN PGP PUBLIC KEY BLOCK" in (repo / "bulwark-archive-keyring.asc").read_text()


def test_no_key_or_a_bad_key_is_one_line(tmp_path, gnupg):
    deb = tiny_deb(tmp_path)
    with pytest.raises(apt_repo.RepoError, match="no signing key"):
        apt_repo.build(tmp_path / "r1", [deb], "")
    with pytest.raises(apt_repo.RepoError, match="gpg failed"):
        apt_repo.build(tmp_path / "r2", [deb], "nobody@nowhere.invalid")


def test_a_file_that_is_not_a_deb_is_refused(tmp_path, gnupg):
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"\0" * 1000)
    with pytest.raises(apt_repo.RepoError, match="not a Debian package"):
        apt_repo.build(tmp_path / "r", [junk], gnupg)
