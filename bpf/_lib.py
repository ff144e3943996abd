"""The one place that imports the cffi module; everything else goes through here."""
from __future__ import annotations

from bpf._native import ffi, lib  # noqa: F401  (re-exported inside the package only)

lib.bw_silence_libbpf()
