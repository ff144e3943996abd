"""Templates: a policy with typed parameters, rendered to policy text (pure).

A template file is TOML (docs/templates.md): `slug`, `version`, `title`, `summary`,
`tags`, `why` (a short page, markdown), `policy` (the policy text with `{{name}}`
placeholders, and its own expect lines as test vectors) and a `[params.NAME]` table
per parameter: `kind`, `default`, `description`, optional `min`/`max` and `boundary`.

Rendering only ever writes a value in the canonical form its kind produced after
validating it, so a string parameter cannot carry policy text: a list name is
`[A-Za-z0-9][A-Za-z0-9._:-]*`, a prefix is re-printed by `ipaddress`, numbers are
integers in their bounds. Placeholders may name a derived value: `{{p.host}}` (an
address inside prefix(es) `p`, for expect lines: in the first IPv4 one if there is one),
`{{r.lo}}` / `{{r.hi}}` (a port range's ends).

    parse_template(text, filename) -> Template     raises TemplateError (located)
    render(template, values)       -> Rendered     raises ParameterError (names each bad one)
    parameter_sets(template)       -> [(label, values)]  the default and every boundary
"""
from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostic, source_line
from .errors import ParameterError, TemplateError

MAX_TEMPLATE_CHARS = 128 * 1024
MAX_VALUE_CHARS = 1024
MAX_PREFIXES = 64
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)(?:\.([a-z]+))?\s*\}\}")
# kind -> (the widest bounds, the derived values a placeholder may name)
KINDS: dict[str, tuple[tuple[int, int] | None, frozenset[str]]] = {
    "port": ((1, 65535), frozenset()),
    "port_range": ((1, 65535), frozenset({"lo", "hi"})),
    "rate": ((1, 2**32 - 1), frozenset()),
    "int": ((0, 2**32 - 1), frozenset()),
    "prefix": (None, frozenset({"host"})),
    "prefixes": (None, frozenset({"host"})),
    "list_name": (None, frozenset()),
}
TOP_KEYS = {"slug", "version", "title", "summary", "tags", "why", "policy", "params"}
PARAM_KEYS = {"kind", "default", "description", "min", "max", "boundary"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any          # canonical value (int, (lo, hi), str, tuple of str)
    description: str
    low: int | None = None
    high: int | None = None
    boundary: tuple[Any, ...] = ()   # extra canonical values the pipeline must try

    @property
    def numeric(self) -> bool:
        return KINDS[self.kind][0] is not None

    @property
    def bounds(self) -> tuple[int, int]:
        """The lowest and highest value a number (or a range's end) may take."""
        wide = KINDS[self.kind][0]
        return (self.low if self.low is not None else wide[0], self.high if self.high is not None else wide[1])

    def as_text(self, value: Any) -> str:
        """The canonical text of a (validated) value, as a form shows it."""
        if self.kind == "port_range":
            lo, hi = value
            return str(lo) if lo == hi else f"{lo}-{hi}"
        if self.kind == "prefixes":
            return ", ".join(value)
        return str(value)


@dataclass(frozen=True)
class Template:
    slug: str
    version: int
    title: str
    summary: str
    why: str
    tags: tuple[str, ...]
    params: tuple[Param, ...]
    policy: str
    filename: str = "<template>"
    policy_line: int = 0  # the file line just before the policy text's first line
    source: str = field(default="", repr=False, compare=False)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class Rendered:
    text: str
    values: dict[str, Any]  # every parameter's canonical value, defaults included

    def values_text(self, template: Template) -> dict[str, str]:
        return {p.name: p.as_text(self.values[p.name]) for p in template.params}


# ---- values ---------------------------------------------------------------------------

def _int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise ValueError("must be a whole number")
    if isinstance(raw, str):
        text = raw.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 10:
            raise ValueError("must be a whole number")
        return int(text)
    return raw


def _bounded(p: Param, value: int) -> int:
    lo, hi = p.bounds
    if not lo <= value <= hi:
        raise ValueError(f"must be from {lo} to {hi}, not {value}")
    return value


def _net(text: str) -> str:
    """The canonical text of an address or prefix: a single host bare, as the hub stores it."""
    t = text.strip()
    try:
        net = ipaddress.ip_network(t, strict=True)
    except ValueError:
        try:
            fixed = ipaddress.ip_network(t, strict=False)
        except ValueError:
            raise ValueError(f"{t[:60]!r} is not an address or prefix") from None
        raise ValueError(f"{t} has host bits set: did you mean {fixed}?") from None
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def coerce(p: Param, raw: Any) -> Any:
    """A raw value (JSON or form text) as `p`'s canonical value. Raises ValueError(why)."""
    if isinstance(raw, str) and len(raw) > MAX_VALUE_CHARS:
        raise ValueError(f"may have at most {MAX_VALUE_CHARS} characters")
    if p.kind in ("port", "rate", "int"):
        return _bounded(p, _int(raw))
    if p.kind == "port_range":
        if isinstance(raw, (list, tuple)) and len(raw) == 2:
            lo, hi = _int(raw[0]), _int(raw[1])
        elif isinstance(raw, str) and "-" in raw:
            a, _, b = raw.partition("-")
            lo, hi = _int(a), _int(b)
        else:
            lo = hi = _int(raw)
        if lo > hi:
            raise ValueError(f"{lo}-{hi} runs backwards")
        return (_bounded(p, lo), _bounded(p, hi))
    if p.kind == "prefix":
        if not isinstance(raw, str):
            raise ValueError("must be an address or prefix")
        return _net(raw)
    if p.kind == "prefixes":
        items = raw if isinstance(raw, (list, tuple)) else \
            [x for x in re.split(r"[\s,]+", raw) if x] if isinstance(raw, str) else None
        if items is None or not all(isinstance(x, str) for x in items):
            raise ValueError("must be a list of addresses or prefixes")
        if not 1 <= len(items) <= MAX_PREFIXES:
            raise ValueError(f"must hold from 1 to {MAX_PREFIXES} addresses or prefixes")
        return tuple(dict.fromkeys(_net(x) for x in items))
    if p.kind == "list_name":
        if not isinstance(raw, str) or not LIST_NAME.fullmatch(raw):
            raise ValueError("must be a list name: letters, digits and . _ : - (at most 64)")
        return raw
    raise AssertionError(p.kind)  # pragma: no cover - kinds are checked at parse time


def _derived(p: Param, value: Any, part: str | None) -> str:
    if part is None:
        return p.as_text(value)
    if part in ("lo", "hi"):
        return str(value[0] if part == "lo" else value[1])
    nets = [ipaddress.ip_network(v) for v in (value if p.kind == "prefixes" else (value,))]
    net = next((x for x in nets if x.version == 4), nets[0])  # expect lines are mostly IPv4
    return str(net.network_address + (1 if net.num_addresses > 1 else 0))


def render(template: Template, values: Mapping[str, Any] | None = None) -> Rendered:
    """The policy text for `values` (missing ones take their default). Raises
    ParameterError naming every unknown or bad parameter."""
    values = dict(values or {})
    problems = [(name[:40], "is not a parameter of this template")
                for name in values if template.param(name) is None]
    final: dict[str, Any] = {}
    for p in template.params:
        if p.name not in values or values[p.name] in (None, ""):
            final[p.name] = p.default
            continue
        try:
            final[p.name] = coerce(p, values[p.name])
        except ValueError as exc:
            problems.append((p.name, str(exc)))
    if problems:
        raise ParameterError(tuple(problems))

    def sub(m: re.Match) -> str:
        p = template.param(m.group(1))
        return _derived(p, final[p.name], m.group(2))

    return Rendered(PLACEHOLDER.sub(sub, template.policy), final)


def parameter_sets(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """What publication tries: the defaults, then each parameter at each of its bounds
    and listed boundary values, the others at their defaults."""
    out = [("defaults", template.defaults)]
    for p in template.params:
        edges: list[Any] = []
        if p.numeric:
            lo, hi = p.bounds
            edges = [lo, hi] if p.kind != "port_range" else [(lo, lo), (lo, hi)]
        for v in (*edges, *p.boundary):
            if v is not None and v != p.default and all(v != e[1][p.name] for e in out
                                                         if e[0].startswith(p.name + "=")):
                out.append((f"{p.name}={p.as_text(v)}", {**template.defaults, p.name: v}))
    return out


# ---- the file -------------------------------------------------------------------------

class _Located:
    def __init__(self, text: str, filename: str):
        self.text, self.filename, self.items = text, filename, []

    def error(self, message: str, line: int = 0, col: int = 1, hint: str | None = None) -> None:
        self.items.append(Diagnostic("error", self.filename, line, col if line else 0, message, hint,
                                     source_line(self.text, line)))

    def line_of(self, pattern: str) -> int:
        m = re.search(pattern, self.text, re.M)
        return self.text.count("\n", 0, m.start()) + 1 if m else 0


def _param(loc: _Located, name: str, spec: Any) -> Param | None:
    at = loc.line_of(rf"^\[params\.{re.escape(name)}\]")
    if not PARAM_NAME.fullmatch(name):
        loc.error(f"parameter name {name[:40]!r} must be lower case letters, digits and _", at)
        return None
    if not isinstance(spec, dict):
        loc.error(f"parameter {name} must be a table", at)
        return None
    for key in set(spec) - PARAM_KEYS:
        loc.error(f"parameter {name}: unknown key {key!r}", at, hint=f"known: {', '.join(sorted(PARAM_KEYS))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        loc.error(f"parameter {name}: kind must be one of {', '.join(KINDS)}", at)
        return None
    low, high = spec.get("min"), spec.get("max")
    wide = KINDS[kind][0]
    for key, bound in (("min", low), ("max", high)):
        if bound is not None and (wide is None or isinstance(bound, bool) or not isinstance(bound, int)
                                  or not wide[0] <= bound <= wide[1]):
            loc.error(f"parameter {name}: {key} must be a whole number within {wide}"
                      if wide else f"parameter {name}: a {kind} has no {key}", at)
            return None
    if kind in ("rate", "int") and high is None:
        loc.error(f"parameter {name}: a {kind} needs a max (publication tries it)", at)
        return None
    if low is not None and high is not None and low > high:
        loc.error(f"parameter {name}: min is above max", at)
        return None
    description = spec.get("description", "")
    if not isinstance(description, str) or not description or len(description) > 300:
        loc.error(f"parameter {name}: description must be text of 1 to 300 characters", at)
        return None
    p = Param(name, kind, None, description, low, high)
    try:
        default = coerce(p, spec.get("default"))
        boundary = tuple(coerce(p, v) for v in spec.get("boundary", []))
    except ValueError as exc:
        loc.error(f"parameter {name}: default or boundary value {exc}", at)
        return None
    return Param(name, kind, default, description, low, high, boundary)


def parse_template(text: str, filename: str = "<template>") -> Template:
    """A template file as a Template. Raises TemplateError with every finding located."""
    loc = _Located(text, filename)
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError([Diagnostic("error", filename, 0, 0,
                                        f"a template may have at most {MAX_TEMPLATE_CHARS} characters")])
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        loc.error(f"not TOML: {str(exc).split(' (at')[0]}", int(m.group(1)) if m else 0,
                  int(m.group(2)) if m else 1)
        raise TemplateError(loc.items) from None
    for key in set(doc) - TOP_KEYS:
        loc.error(f"unknown key {key!r}", loc.line_of(rf"^{re.escape(key)}\s*="),
                  hint=f"known: {', '.join(sorted(TOP_KEYS))}")
    slug, version = doc.get("slug"), doc.get("version")
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        loc.error("slug must be lower case letters, digits and -, at most 63", loc.line_of(r"^slug"))
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 100000:
        loc.error("version must be a whole number from 1", loc.line_of(r"^version"))
    texts = {}
    for key, most in (("title", 80), ("summary", 300), ("why", 8000), ("policy", 64 * 1024)):
        value = doc.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > most:
            loc.error(f"{key} must be text of 1 to {most} characters", loc.line_of(rf"^{key}\s*="))
        texts[key] = value if isinstance(value, str) else ""
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 12 or not all(isinstance(t, str) and SLUG.fullmatch(t) for t in tags):
        loc.error("tags must be a list of at most 12 slugs", loc.line_of(r"^tags"))
        tags = []
    raw_params = doc.get("params", {})
    params = [p for name, spec in (raw_params.items() if isinstance(raw_params, dict) else ())
              if (p := _param(loc, name, spec)) is not None]
    policy_line = loc.line_of(r"^policy\s*=")
    _placeholders(loc, texts["policy"], policy_line, {p.name: p for p in params}, raw_params)
    if loc.items:
        raise TemplateError(loc.items)
    return Template(slug, version, texts["title"].strip(), texts["summary"].strip(), texts["why"].strip(),
                    tuple(tags), tuple(params), texts["policy"], filename, policy_line, text)


def _placeholders(loc: _Located, policy: str, policy_line: int, params: dict[str, Param],
                  raw_params: Any) -> None:
    used = set()
    for n, line in enumerate(policy.splitlines(), 1):
        at = policy_line + n
        for m in PLACEHOLDER.finditer(line):
            name, part = m.group(1), m.group(2)
            p = params.get(name)
            if p is None:
                if not isinstance(raw_params, dict) or name not in raw_params:
                    loc.error(f"{{{{{name}}}}} names no parameter", at, m.start() + 1)
                continue
            if part is not None and part not in KINDS[p.kind][1]:
                loc.error(f"a {p.kind} has no .{part}", at, m.start() + 1)
            used.add(name)
        stray = PLACEHOLDER.sub("", line)
        if "{{" in stray or "}}" in stray:
            loc.error("a placeholder is {{name}} or {{name.part}}", at, max(stray.find("{{"), 0) + 1)
    for name in sorted(set(params) - used):
        loc.error(f"parameter {name} is never used", loc.line_of(rf"^\[params\.{name}\]"))
