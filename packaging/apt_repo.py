"""`make repo`: a signed apt repository (one suite, `stable`, component `main`) from .debs.

    build/repo/pool/main/bulwark_<version>_amd64.deb
    build/repo/dists/stable/main/binary-amd64/Packages(.gz)
    build/repo/dists/stable/Release, Release.gpg, InRelease
    build/repo/bulwark-archive-keyring.asc          the public key clients install

Written in Python (no apt-utils on the build machine); signed with gpg using the key the
operator names (REPO_KEY, from their keyring or a GNUPGHOME). docs/agent.md says how
clients use it.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

SUITE, COMPONENT, ARCH = "stable", "main", "amd64"


class RepoError(SystemExit):
    """The repository cannot be written: one line saying why."""


def control_fields(deb: Path) -> str:
    out = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True)
    if out.returncode:
        raise RepoError(f"repo: {deb} is not a Debian package: {out.stderr.strip()}")
    return out.stdout.rstrip("\n")


def packages_stanza(deb: Path, pool_path: str) -> str:
    data = deb.read_bytes()
    return (f"{control_fields(deb)}\nFilename: {pool_path}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")


def release_file(dist: Path, files: list[Path], now: float) -> str:
    lines = [f"Origin: Bulwark", f"Label: Bulwark", f"Suite: {SUITE}", f"Codename: {SUITE}",
             f"Date: {formatdate(now, usegmt=True)}", f"Architectures: {ARCH}", f"Components: {COMPONENT}",
             "SHA256:"]
    for f in files:
        data = f.read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {f.relative_to(dist)}")
    return "\n".join(lines) + "\n"


def gpg(key: str, *args: str) -> None:
    out = subprocess.run(["gpg", "--batch", "--yes", "--local-user", key, *args], capture_output=True, text=True)
    if out.returncode:
        raise RepoError(f"repo: gpg failed for key {key!r}: {out.stderr.strip()[-300:]}")


def build(out: Path, debs: list[Path], key: str, now: float | None = None) -> Path:
    if not key:
        raise RepoError("repo: no signing key: give --key (make repo REPO_KEY=<key id>)")
    pool, binary = out / "pool" / COMPONENT, out / "dists" / SUITE / COMPONENT / f"binary-{ARCH}"
    pool.mkdir(parents=True, exist_ok=True)
    binary.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in sorted(debs):
        shutil.copy2(deb, pool / deb.name)
        stanzas.append(packages_stanza(pool / deb.name, f"pool/{COMPONENT}/{deb.name}"))
    packages = "\n".join(stanzas)
    (binary / "Packages").write_text(packages)
    (binary / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
    dist = out / "dists" / SUITE
    release = dist / "Release"
    release.write_text(release_file(dist, [binary / "Packages", binary / "Packages.gz"],
                                    time.time() if now is None else now))
    gpg(key, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"), str(release))
    gpg(key, "--clearsign", "--output", str(dist / "InRelease"), str(release))
    exported = subprocess.run(["gpg", "--batch", "--armor", "--export", key], capture_output=True, text=True)
    (out / "bulwark-archive-keyring.asc").write_text(exported.stdout)
    return dist


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="packaging/apt_repo.py", description="write a signed apt repository")
    p.add_argument("--key", required=True, help="the gpg key (id or e-mail) that signs Release")
    p.add_argument("out", help="the repository directory")
    p.add_argument("debs", nargs="+", help="the .deb files to publish")
    args = p.parse_args(argv)
    print(build(Path(args.out), [Path(d) for d in args.debs], args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
