"""packaging/build.py's pure parts: the hash pins and the relocation of the staged venv."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("package_build", ROOT / "packaging" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def test_every_wheel_is_pinned_by_version_and_sha256(tmp_path):
    (tmp_path / "trio-0.27.0-py3-none-any.whl").write_bytes(b"one")
    (tmp_path / "cffi-1.17.1-cp311-cp311-manylinux.whl").write_bytes(b"two")
    (tmp_path / "notes.txt").write_text("not a wheel")
    lines = build.wheel_requirements(tmp_path).splitlines()
    assert lines == [f"cffi==1.17.1 --hash=sha256:{hashlib.sha256(b'two').hexdigest()}",
                     f"trio==0.27.0 --hash=sha256:{hashlib.sha256(b'one').hexdigest()}"]


def test_relocation_rewrites_text_and_leaves_binaries_and_symlinks(tmp_path):
    staged = tmp_path / "root" / "opt" / "bulwark"
    (staged / "bin").mkdir(parents=True)
    (staged / "bin" / "bulwark").write_text(f"#!{staged}/bin/python\nimport x\n")
    (staged / "lib.so").write_bytes(str(staged).encode())
    (staged / "bin" / "python").symlink_to("/usr/bin/python3")
    assert build.relocate(staged, str(staged), "/opt/bulwark") == 1
    assert (staged / "bin" / "bulwark").read_text().startswith("#!/opt/bulwark/bin/python\n")
    assert (staged / "lib.so").read_bytes() == str(staged).encode()
    assert str((staged / "bin" / "python").readlink()) == "/usr/bin/python3"
