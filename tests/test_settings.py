"""The shared settings loader (bulwark/settings.py): layers in order, types checked, unknown
keys refused in every layer, errors raised as the caller's own class."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from bulwark import settings


class Bad(Exception):
    pass


@dataclass(frozen=True)
class S:
    name: str = "a"
    port: int = 1
    ratio_s: float = 0.5
    on: bool = False
    iface: str | None = None
    prefixes: tuple[str, ...] = ()


def load(**kw) -> S:
    kw.setdefault("env", {})
    return settings.load(S, error=Bad, env_prefix="T_", **kw)


def test_layers_override_in_order_and_env_is_text(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('name = "file"\nport = 2\niface = "eth0"\nprefixes = ["10.0.0.0/8"]\n')
    s = load(file=f, env={"T_PORT": "3", "T_ON": "yes", "T_IFACE": "none", "T_PREFIXES": "a, b",
                          "T_CONFIG": "ignored.toml", "OTHER": "x"},
             flags={"name": "flag", "ratio_s": None})
    assert s == S(name="flag", port=3, ratio_s=0.5, on=True, iface=None, prefixes=("a", "b"))
    assert load(flags={"prefixes": "c,d"}).prefixes == ("c", "d")
    assert load() == S()


def test_one_section_table_or_flat(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[part]\nport = 7\n')
    assert load(file=f, section="part").port == 7
    with pytest.raises(Bad, match="unknown setting 'part'"):
        load(file=f)


@pytest.mark.parametrize("layer, match", [("file", "s.toml: unknown setting 'prot'"),
                                          ("env", r"environment: unknown setting T_PROT \('prot'\)"),
                                          ("flags", "flags: unknown setting 'prot'")])
def test_unknown_keys_are_refused_in_every_layer(tmp_path, layer, match):
    f = tmp_path / "s.toml"
    f.write_text("prot = 1\n" if layer == "file" else "")
    with pytest.raises(Bad, match=match):
        load(file=f, env={"T_PROT": "1"} if layer == "env" else {},
             flags={"prot": 1} if layer == "flags" else None)


@pytest.mark.parametrize("text, match", [("port = 1.5", "port must be an integer"),
                                         ("port = true", "port must be an integer"),
                                         ("name = 3", "name must be a string"),
                                         ("on = 1", "on must be true or false"),
                                         ("ratio_s = \"fast\"", "ratio_s must be a number"),
                                         ("prefixes = 5", "prefixes must be a list of strings"),
                                         ("prefixes = [\"a\", 5]", "prefixes must be a list of strings")])
def test_wrong_types_are_refused(tmp_path, text, match):
    f = tmp_path / "s.toml"
    f.write_text(text + "\n")
    with pytest.raises(Bad, match=match):
        load(file=f)
    with pytest.raises(Bad, match="cannot read config"):
        load(file=tmp_path / "missing.toml")
