"""One way to build a process's settings, shared by the agent and the hub.

A part declares its settings as a frozen dataclass (defaults, types, units in the names)
and builds it once with `load`, from layers that override one another in order:

    defaults → TOML file (flat keys, or one `[section]` table) → `<PREFIX><KEY>` environment
    variables → flags (a mapping; None means "not given")

Unknown keys in any layer are refused, so a typo never silently falls back to a default.
Values are checked against the field's type: str, int, float, bool, `X | None` and
`tuple[str, ...]`. Environment values are text: "" or "none" give None for an optional
field; "a, b" gives a tuple (in any layer). The part's own rules (ranges, choices) are checked by the part
after `load`. Errors are raised as the caller's own error class (the agent's and the
hub's ConfigError), each naming the layer and the key.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(cls: type, key: str, value: Any, *, source: str, from_text: bool,
           error: type[Exception]) -> Any:
    """`value` as the type of `cls`'s field `key`. Raises `error` when it is not one."""
    hint = _hints(cls)[key]
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if optional and (value is None or (from_text and value in ("", "none"))):
        return None

    def bad(expected: str) -> Exception:
        return error(f"{source}: {key} must be {expected}, not {value!r}")

    if typing.get_origin(base) is tuple:
        if isinstance(value, str):  # "a, b": the environment's way, accepted everywhere
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if base is bool:
        if isinstance(value, str) and value.lower() in ("1", "0", "true", "false", "yes", "no"):
            return value.lower() in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if base in (int, float):
        kinds = (int, str) if base is int else (int, float, str)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise bad("an integer" if base is int else "a number")
        try:
            return base(value)
        except ValueError:
            raise bad("an integer" if base is int else "a number") from None
    if base is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise error(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover - a part's bug


def read_toml(file: str | os.PathLike[str], *, section: str | None, error: type[Exception]) -> dict[str, Any]:
    """The file's settings: its top level, or its one `[section]` table."""
    try:
        with open(file, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise error(f"cannot read config {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{file}: {exc}") from None
    if section is not None and set(doc) == {section} and isinstance(doc[section], dict):
        return doc[section]
    return doc


def load(cls: type[T], *, error: type[Exception], env_prefix: str,
         file: str | os.PathLike[str] | None = None, section: str | None = None,
         env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None,
         flags_source: str = "flags") -> T:
    """`cls` built from its layers (see the module docstring). `<PREFIX>CONFIG` in the
    environment is left to the caller (it names the file, it is not a setting).
    Raises `error` naming the layer and the key."""
    env = os.environ if env is None else env
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}

    def layer(items, source: str, *, from_text: bool, shown=lambda key: repr(key)) -> None:
        for key, value in items:
            if key not in fields:
                raise error(f"{source}: unknown setting {shown(key)}")
            values[key] = coerce(cls, key, value, source=source, from_text=from_text, error=error)

    if file is not None:
        layer(read_toml(file, section=section, error=error).items(), str(file), from_text=False)
    names = {k[len(env_prefix):].lower(): k for k in env
             if k.startswith(env_prefix) and k != env_prefix + "CONFIG"}
    layer(((name, env[k]) for name, k in names.items()), "environment", from_text=True,
          shown=lambda name: f"{names[name]} ({name!r})")
    layer(((k, v) for k, v in (flags or {}).items() if v is not None), flags_source, from_text=False)
    return cls(**values)
