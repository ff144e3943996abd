"""The native build fails with one line that names what to install."""
from __future__ import annotations

import pytest

import cffi_build


def test_missing_compiler_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(cffi_build.shutil, "which", lambda name: None)
    with pytest.raises(cffi_build.BuildError) as caught:
        cffi_build.check_requirements()
    message = str(caught.value)
    assert message == "cffi_build: missing tool clang: apt-get install clang"


def test_missing_header_names_the_debian_package(monkeypatch):
    real_exists = cffi_build.Path.exists
    monkeypatch.setattr(cffi_build.Path, "exists",
                        lambda self: False if "libnftables" in str(self) else real_exists(self))
    with pytest.raises(cffi_build.BuildError, match="apt-get install libnftables-dev$"):
        cffi_build.check_requirements()


def test_a_compile_error_is_reported_in_one_message(tmp_path):
    source = tmp_path / "broken.bpf.c"
    source.write_text("int x = ;\n")
    with pytest.raises(cffi_build.BuildError, match="clang failed on .*broken.bpf.c"):
        cffi_build.compile_bpf(source, tmp_path / "broken.bpf.o")
