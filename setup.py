"""Hooks the native build into every install: see cffi_build.py."""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildNative(build_ext):
    """Compile the BPF objects beside the cffi bindings."""

    def run(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cffi_build

        cffi_build.check_requirements()
        super().run()
        out_dir = None if self.inplace else self.build_lib
        cffi_build.compile_bpf_objects(out_dir)


setup(
    cffi_modules=["cffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildNative},
)
