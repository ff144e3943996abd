"""Text → `Policy`: the lark grammar, named syntax errors, and the tree → node transform.

Raises `ParseError` (a `DslError`) for any text that is not in the language; nothing else.
"""
from __future__ import annotations

import functools
import importlib.resources
import re

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import nodes as n
from .diagnostics import Reporter
from .errors import ParseError
from .vocab import FLAG_WORDS, PER_ANY, PORT_NAMES, RATE_UNITS, suggest

MAX_SOURCE_BYTES = 8 * 1024 * 1024
# No number in the language needs more (the largest is a 64-bit counter); the lexer stops
# longer ones so int() never meets thousands of digits (Python refuses > 4,300 anyway).
MAX_NUMBER_DIGITS = 20
_LONG_DIGITS = re.compile(rf"[0-9]{{{MAX_NUMBER_DIGITS + 1},}}")
_NUMERIC_TERMINALS = ("INT", "DURATION", "IPV4", "IPV6")


class _NumberTooLong(Exception):
    """Raised by the lexer callback; `_parse_tree` turns it into a located ParseError."""

    def __init__(self, tok: Token) -> None:
        super().__init__(str(tok))
        self.tok = tok


def _bound_digits(tok: Token) -> Token:
    if _LONG_DIGITS.search(tok):
        raise _NumberTooLong(tok)
    return tok


@functools.cache
def parser() -> Lark:
    grammar = importlib.resources.files(__package__).joinpath("bulwark.lark").read_text()
    try:
        import interegular  # noqa: F401  (strict mode checks terminal collisions with it)
        strict = True
    except ImportError:  # pragma: no cover - the dependency is declared; see tests
        strict = False
    return Lark(grammar, parser="lalr", strict=strict, propagate_positions=True,
                start=["start", "packet_only"], maybe_placeholders=True,
                lexer_callbacks={name: _bound_digits for name in _NUMERIC_TERMINALS})


def keywords() -> tuple[str, ...]:
    """The language's fixed words: the grammar's literal terminals (`policy`, `drop`,
    `lockout-guard`...), so an editor's highlighting follows the grammar, not a copy."""
    return tuple(sorted({t.pattern.value for t in parser().terminals
                         if t.pattern.type == "str" and t.pattern.value[:1].isalpha()}))


# Named syntax errors: lark's match_examples finds the label whose examples fail in the
# same parser state as the user's text.
ERROR_EXAMPLES: dict[str, list[str]] = {
    "a rule starts with its verdict: 'pass' or 'drop'": [
        "tcp", "from 192.0.2.1", "dport 22", "accept", "allow", "deny", "block", "reject",
        "ct state new",
    ],
    "expected an address, a prefix, 'any', a set like @admins, or { a, b }": [
        "pass from", "pass from tcp", "pass to dport", "pass from {", "pass from { tcp",
    ],
    "expected a port, a range like 1024-2048, a name like 'ssh', or a set like @web": [
        "pass tcp dport", "pass tcp sport", "pass tcp dport from", "pass tcp dport {",
        "pass tcp dport 1-",
    ],
    "'default' takes 'pass' or 'drop'": ["default", "default tcp", "default accept"],
    "'malformed' takes 'pass' or 'drop'": ["malformed", "malformed accept"],
    "a set is written: set NAME { item, item, ... }": [
        "set", "set {", "set x", "set x 192.0.2.1", "set x { 1.2.3.4 5.6.7.8 }", "set x { tcp",
    ],
    "a limit is written: limit RATE [UNIT]/second [burst N] [per src|dst|global] [block 10m]": [
        "pass limit", "pass limit 10", "pass limit 10 /", "pass limit 10/second burst",
        "pass limit 10/second per", "pass limit 10/second block", "pass limit x",
    ],
    "matchers come before 'limit'": ["pass limit 10/second from 192.0.2.1",
                                     "pass limit 10/second tcp", "pass limit 10/second dport 1"],
    "a duration needs a unit: 30s, 10m, 1h, 1d (or 500ms in 'at')": [
        "pass limit 1/second block 600", "expect pass non-ip at 5",
    ],
    "an expect line is: expect pass|drop PROTO SRC[:PORT] -> DST[:PORT] [options]": [
        "expect", "expect drop", "expect drop tcp", "expect drop tcp 192.0.2.1",
        "expect drop tcp 192.0.2.1:5", "expect drop tcp 192.0.2.1:5 ->", "expect tcp",
        "expect drop tcp 192.0.2.1:5 -> dport",
    ],
    "an IPv6 endpoint with a port is written [2001:db8::1]:443": [
        "expect drop tcp 2001:db8::1:", "expect drop tcp [2001:db8::1",
        "expect drop tcp [2001:db8::1]",
    ],
    "a comparison is N, A-B, <N, <=N, >N or >=N": ["pass length", "pass ttl", "pass length <",
                                                   "pass ttl 1-", "pass length from"],
    "'flags' takes flag names joined by '|', with an optional /mask: flags syn/syn|ack": [
        "pass tcp flags", "pass tcp flags syn/", "pass tcp flags syn|", "pass tcp flags 2",
    ],
    "a stateful block is written: stateful { rule... }": [
        "stateful", "stateful pass", "stateful { tcp", "stateful { limit",
    ],
    "'ct state' takes states: established, related, new, invalid, untracked": [
        "stateful { pass ct", "stateful { pass ct state", "stateful { pass ct established",
    ],
    "a policy is named: policy \"name\"": ["policy", "policy {", "policy 1"],
    "unexpected end of the file: is a '}' missing?": ["set x { 1.2.3.4", "stateful {",
                                                       "stateful { pass"],
}



@functools.cache
def _examples() -> dict[str, list[str]]:
    """Each example bare and after a statement: the parser's stack differs between them."""
    prefixes = ("", 'policy "p"\n', 'policy "p"\ndefault drop\n')
    return {label: [p + ex for ex in exs for p in prefixes]
            for label, exs in ERROR_EXAMPLES.items()}


@functools.cache
def _example_error(text: str) -> UnexpectedInput | None:
    try:
        parser().parse(text, start="start")
    except UnexpectedInput as exc:
        return exc
    return None  # pragma: no cover - every example is an error


def _replay(text: str) -> None:
    """match_examples' parse function: re-raise the example's error, parsed once per process."""
    exc = _example_error(text)
    if exc is not None:
        raise exc


_KEYWORDS_CACHE: dict[str, str] = {}


def _keyword(name: str) -> str | None:
    """The literal text of a terminal, when it is a fixed word."""
    if not _KEYWORDS_CACHE:
        for t in parser().terminals:
            if t.pattern.type == "str":
                _KEYWORDS_CACHE[t.name] = t.pattern.value
    return _KEYWORDS_CACHE.get(name)


_TERMINAL_WORDS = {"NAME": "a name", "INT": "a number", "STRING": 'a "string"',
                   "IPV4": "an IPv4 address", "IPV6": "an IPv6 address", "SETREF": "@set",
                   "DURATION": "a duration", "CMP_OP": "<, <=, > or >="}


def _expected_words(expected) -> list[str]:
    out = []
    for name in sorted(expected or ()):
        word = _keyword(name)
        if word is not None:
            out.append(f"'{word}'")
        elif name in _TERMINAL_WORDS:
            out.append(_TERMINAL_WORDS[name])
    return out


def _syntax_diagnostic(text: str, filename: str, exc: UnexpectedInput, start: str):
    rep = Reporter(text, filename)
    label = None
    try:
        label = exc.match_examples(_replay, _examples(), use_accepts=True) \
            if start == "start" and not isinstance(exc, UnexpectedCharacters) else None
    except LarkError:  # pragma: no cover - match_examples itself failing is not the user's
        label = None
    expected = getattr(exc, "accepts", None) or getattr(exc, "expected", None) or set()
    words = _expected_words(expected)
    hint = None
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        line, col = tok.line, tok.column
        end = n.Pos(line, col, tok.end_line or line, tok.end_column or col + 1)
        keywords = [w.strip("'") for w in words if w.startswith("'")]
        better = suggest(str(tok.value), keywords) if keywords else None
        if better:
            hint = f"did you mean '{better}'?"
        what = "word" if tok.type == "NAME" else "token"
        message = label or f"unexpected {what} '{tok.value}'"
        if label:
            message = f"{label} (found '{tok.value}')"
    elif isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        end = n.Pos(line, col, line, col + 1)
        char = exc.char
        message = f"unexpected character {char!r}"
        hint = {";": "statements end by themselves: remove the ';'",
                "!": "negation is not part of the language: list what to match instead",
                "'": 'strings use double quotes: "like this"',
                "=": "no '=' is needed: write 'set NAME { ... }' or 'default drop'",
                "(": "parentheses are not used: write flags as syn/syn|ack",
                }.get(char)
        if label:
            message = f"{label} (found {char!r})"
    else:  # UnexpectedEOF or a token at $END
        lines = text.splitlines() or [""]
        line = len(lines)
        col = len(lines[-1]) + 1
        end = n.Pos(line, col, line, col + 1)
        message = label or "unexpected end of the file"
    if hint is None and words and len(words) <= 8:
        hint = "expected " + ", ".join(words)
    rep.error(end, message, hint)
    return rep.items


class _Build(Transformer):
    """Tree → nodes. Collects enumeration errors instead of stopping at the first."""

    def __init__(self, rep: Reporter):
        super().__init__(visit_tokens=False)
        self.rep = rep

    # ---- helpers
    @staticmethod
    def tpos(tok: Token) -> n.Pos:
        return n.Pos(tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)

    @staticmethod
    def mpos(meta) -> n.Pos:
        if getattr(meta, "empty", True):
            return n.NOPOS
        return n.Pos(meta.line, meta.column, meta.end_line, meta.end_column)

    def word(self, tok: Token, allowed, what: str) -> n.Word:
        value = str(tok).lower() if str(tok).lower() in allowed else str(tok)
        if value not in allowed:
            better = suggest(value, allowed)
            self.rep.error(self.tpos(tok), f"unknown {what} '{tok}'",
                           f"did you mean '{better}'?" if better else
                           "use one of: " + ", ".join(sorted(allowed)))
        return n.Word(value, pos=self.tpos(tok))

    def number(self, tok: Token) -> int:
        return int(str(tok))

    # ---- top level
    @v_args(meta=True)
    def start(self, meta, items):
        return items

    def policy_decl(self, c):
        tok = c[0]
        name = str(tok)[1:-1] if tok.type == "STRING" else str(tok)
        return ("name", n.Word(name, pos=self.tpos(tok)))

    def verdict(self, c):
        return n.Word(str(c[0]), pos=self.tpos(c[0]))

    def default_opt(self, c):
        return ("default", c[0])

    def malformed_opt(self, c):
        return ("malformed", c[1])

    def mode_opt(self, c):
        return ("mode", self.word(c[0], {"enforce", "monitor"}, "mode"))

    def guard_opt(self, c):
        return ("lockout_guard", self.word(c[0], {"on", "off"}, "lockout-guard setting"))

    @v_args(meta=True)
    def set_decl(self, meta, c):
        name = c[0]
        items = tuple(x for x in c[1:] if x is not None)
        return ("set", n.SetDecl(str(name), items, pos=self.tpos(name)))

    def address(self, c):
        return n.Addr(str(c[0]), pos=self.tpos(c[0]))

    def setref(self, c):
        return n.SetRef(str(c[0])[1:], pos=self.tpos(c[0]))

    def list_ref(self, c):
        return n.ListRef(str(c[0])[1:-1], pos=self.tpos(c[0]))

    @v_args(meta=True)
    def port_range(self, meta, c):
        return n.PortRange(self.number(c[0]), self.number(c[1]), pos=self.mpos(meta))

    def port_single(self, c):
        v = self.number(c[0])
        return n.PortRange(v, v, pos=self.tpos(c[0]))

    def port_name(self, c):
        tok = c[0]
        name = str(tok).lower()
        if name not in PORT_NAMES:
            better = suggest(name, PORT_NAMES)
            self.rep.error(self.tpos(tok), f"unknown port name '{tok}'",
                           f"did you mean '{better}'?" if better else "write the port number")
        return n.PortName(name, pos=self.tpos(tok))

    # ---- matchers: each returns (field, value, pos)
    @v_args(meta=True)
    def from_m(self, meta, c):
        return ("src", self._addrs(c), self.mpos(meta))

    @v_args(meta=True)
    def to_m(self, meta, c):
        return ("dst", self._addrs(c), self.mpos(meta))

    @staticmethod
    def _addrs(c):
        if len(c) == 1 and isinstance(c[0], Token) and c[0].type == "ANY":
            return None   # 'any' is the same as not saying
        return tuple(c)

    @v_args(meta=True)
    def proto_m(self, meta, c):
        if len(c) == 1 and isinstance(c[0], Token):
            return ("proto", (n.Proto(str(c[0]), pos=self.tpos(c[0])),), self.mpos(meta))
        return ("proto", tuple(c), self.mpos(meta))

    def proto_item(self, c):
        tok = c[0]
        value = self.number(tok) if tok.type == "INT" else str(tok).lower()
        return n.Proto(value, pos=self.tpos(tok))

    @v_args(meta=True)
    def sport_m(self, meta, c):
        return ("sport", tuple(c), self.mpos(meta))

    @v_args(meta=True)
    def dport_m(self, meta, c):
        return ("dport", tuple(c), self.mpos(meta))

    @v_args(meta=True)
    def flags_m(self, meta, c):
        return ("flags", tuple(c), self.mpos(meta))

    @v_args(meta=True)
    def flag_combo(self, meta, c):
        return n.FlagCombo(c[0], c[1] if len(c) > 1 else None, pos=self.mpos(meta))

    def flag_bits(self, c):
        out = []
        for tok in c:
            name = str(tok).lower()
            if name not in FLAG_WORDS:
                better = suggest(name, FLAG_WORDS)
                self.rep.error(self.tpos(tok), f"unknown TCP flag '{tok}'",
                               f"did you mean '{better}'?" if better else
                               "flags are fin, syn, rst, psh, ack, urg, ece, cwr, null, xmas, none")
            out.append(name)
        return tuple(out)

    @v_args(meta=True)
    def length_m(self, meta, c):
        return ("length", c[0], self.mpos(meta))

    @v_args(meta=True)
    def ttl_m(self, meta, c):
        return ("ttl", c[0], self.mpos(meta))

    @v_args(meta=True)
    def cmp_eq(self, meta, c):
        return n.Cmp("=", self.number(c[0]), pos=self.mpos(meta))

    @v_args(meta=True)
    def cmp_range(self, meta, c):
        return n.Cmp("-", self.number(c[0]), self.number(c[1]), pos=self.mpos(meta))

    @v_args(meta=True)
    def cmp_op(self, meta, c):
        return n.Cmp(str(c[0]), self.number(c[1]), pos=self.mpos(meta))

    @v_args(meta=True)
    def frag_m(self, meta, c):
        if c[0] is None:
            return ("fragment", n.Word("yes", pos=self.mpos(meta)), self.mpos(meta))
        return ("fragment", self.word(c[0], {"yes", "no"}, "fragment setting"), self.mpos(meta))

    @v_args(meta=True)
    def type_m(self, meta, c):
        return ("icmp_type", tuple(c), self.mpos(meta))

    def icmp_item(self, c):
        tok = c[0]
        return n.IcmpType(self.number(tok) if tok.type == "INT" else str(tok).lower(),
                          pos=self.tpos(tok))

    def _unit(self, tok, what="unit"):
        if tok is None:
            return "packets"
        u = str(tok).lower()
        if u == "packet":
            u = "packets"
        if u not in RATE_UNITS:
            better = suggest(u, RATE_UNITS)
            self.rep.error(self.tpos(tok), f"unknown {what} '{tok}'",
                           f"did you mean '{better}'?" if better else
                           "use packets, bytes, kbytes, mbytes or gbytes")
        return u

    def _per(self, tok):
        u = str(tok).lower()
        if u not in PER_ANY:
            better = suggest(u, PER_ANY)
            self.rep.error(self.tpos(tok), f"unknown time unit '{tok}'",
                           f"did you mean '{better}'?" if better else "write /second")
            return u
        return PER_ANY[u]

    @v_args(meta=True)
    def limit(self, meta, c):
        rate, unit, per, burst, key, block = c
        burst_n, burst_unit = burst if burst is not None else (None, None)
        return ("limit", n.Limit(self.number(rate), self._unit(unit), self._per(per),
                                 burst_n, burst_unit, key, block, pos=self.mpos(meta)),
                self.mpos(meta))

    def burst(self, c):
        return self.number(c[0]), (self._unit(c[1]) if c[1] is not None else None)

    @v_args(meta=True)
    def key_per(self, meta, c):
        side = self.word(c[0], {"src", "dst"}, "key")
        v4 = v6 = None
        for fam, length, tok in c[1:]:
            if fam == "ipv4":
                v4 = length
            elif fam == "ipv6":
                v6 = length
            else:
                self.rep.error(self.tpos(tok), f"unknown key family '{tok}'",
                               "write ipv4/24 or ipv6/64")
        return n.Key(side.value, v4, v6, pos=self.mpos(meta))

    @v_args(meta=True)
    def key_global(self, meta, c):
        return n.Key("global", pos=self.mpos(meta))

    def key_len(self, c):
        return str(c[0]).lower(), self.number(c[1]), c[0]

    def block(self, c):
        return self._duration_s(c[0])

    def _duration_ms(self, tok) -> int:
        s = str(tok)
        for unit, ms in (("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000),
                         ("d", 86_400_000)):
            if s.endswith(unit) and s[: -len(unit)].isdigit():
                return int(s[: -len(unit)]) * ms
        raise AssertionError(s)  # pragma: no cover - the DURATION terminal forbids it

    def _duration_s(self, tok) -> int:
        ms = self._duration_ms(tok)
        if ms % 1000:
            self.rep.error(self.tpos(tok), f"a block lasts whole seconds, not '{tok}'",
                           f"write {max(1, ms // 1000)}s")
        return ms // 1000

    @v_args(meta=True)
    def rule(self, meta, c):
        action, *matchers = c
        limits = tuple(m[1] for m in matchers if m[0] == "limit")
        fields = self._fields([m for m in matchers if m[0] != "limit"], "rule")
        return ("rule", n.Rule(action, **fields, limits=limits, pos=self.mpos(meta)))

    def _fields(self, matchers, what):
        fields: dict = {}
        for item in matchers:
            name, value, pos = item
            if name in fields:
                self.rep.error(pos, f"'{_FIELD_WORDS.get(name, name)}' is given twice in this {what}",
                               "list several values in one matcher: { a, b }")
                continue
            fields[name] = value
        return fields

    # ---- stateful
    def stateful(self, c):
        return ("stateful", tuple(c))

    @v_args(meta=True)
    def srule(self, meta, c):
        action, *matchers = c
        return n.StatefulRule(action, **self._fields(matchers, "rule"), pos=self.mpos(meta))

    @v_args(meta=True)
    def synproxy(self, meta, c):
        fields = self._fields(c, "synproxy rule")
        return n.StatefulRule(n.Word("synproxy", pos=self.mpos(meta)), **fields,
                              pos=self.mpos(meta))

    @v_args(meta=True)
    def ct_m(self, meta, c):
        words = tuple(self.word(t, {"established", "related", "new", "invalid", "untracked"},
                                "conntrack state") for t in c)
        return ("ct_state", words, self.mpos(meta))

    @v_args(meta=True)
    def rate_over(self, meta, c):
        rate, per, burst, key = c
        self.word(key, {"src"}, "key (stateful rates are per src)")
        return ("rate", n.CtRate(self.number(rate), self._per(per),
                                 self.number(burst) if burst is not None else None,
                                 pos=self.mpos(meta)), self.mpos(meta))

    @v_args(meta=True)
    def conn_over(self, meta, c):
        self.word(c[1], {"src"}, "key (connection counts are per src)")
        return ("connections", self.number(c[0]), self.mpos(meta))

    @v_args(meta=True)
    def syn_mss(self, meta, c):
        return ("mss", self.number(c[0]), self.mpos(meta))

    @v_args(meta=True)
    def syn_wscale(self, meta, c):
        return ("wscale", self.number(c[0]), self.mpos(meta))

    @v_args(meta=True)
    def syn_timestamp(self, meta, c):
        return ("timestamp", True, self.mpos(meta))

    @v_args(meta=True)
    def syn_sack(self, meta, c):
        return ("sack_perm", True, self.mpos(meta))

    # ---- tests
    def test_list(self, c):
        tok = c[0]
        return ("test_list", n.TestList(str(tok)[1:-1], tuple(x for x in c[1:] if x is not None),
                                        pos=self.tpos(tok)))

    @v_args(meta=True)
    def expect(self, meta, c):
        verdict, packet, *opts = c
        extra = dict(opts)
        return ("expect", n.Expect(verdict, packet, extra.get("repeat"), extra.get("at"),
                                   pos=self.mpos(meta)))

    def repeat(self, c):
        return ("repeat", self.number(c[0]))

    def at(self, c):
        return ("at", self._duration_ms(c[0]))

    @v_args(meta=True)
    def packet_only(self, meta, c):
        packet, *opts = c
        extra = dict(opts)
        return n.Expect(n.Word("pass"), packet, extra.get("repeat"), extra.get("at"),
                        pos=self.mpos(meta))

    def pkt_proto(self, c):
        tok = c[0]
        return self.number(tok) if tok.type == "INT" else str(tok).lower()

    @v_args(meta=True)
    def ip_packet(self, meta, c):
        proto, (src, sport), (dst, dport), *opts = c
        fields: dict = {}
        for name, value, pos in opts:
            if name in fields:
                self.rep.error(pos, f"'{name}' is given twice in this packet")
            fields[name] = value
        return n.PacketSpec("ip", proto, src, sport, dst, dport, pos=self.mpos(meta), **fields)

    def endpoint(self, c):
        return str(c[0]), (self.number(c[1]) if len(c) > 1 and c[1] is not None else None)

    @v_args(meta=True)
    def nonip_packet(self, meta, c):
        return n.PacketSpec("non-ip", pos=self.mpos(meta))

    @v_args(meta=True)
    def malformed_packet(self, meta, c):
        return n.PacketSpec("malformed", pos=self.mpos(meta))

    @v_args(meta=True)
    def pkt_flags(self, meta, c):
        return ("flags", c[0], self.mpos(meta))

    @v_args(meta=True)
    def pkt_length(self, meta, c):
        return ("length", self.number(c[0]), self.mpos(meta))

    @v_args(meta=True)
    def pkt_ttl(self, meta, c):
        return ("ttl", self.number(c[0]), self.mpos(meta))

    @v_args(meta=True)
    def pkt_type(self, meta, c):
        return ("icmp_type", c[0].value, self.mpos(meta))

    @v_args(meta=True)
    def pkt_fragment(self, meta, c):
        return ("fragment", self.word(c[0], {"first", "later"}, "fragment kind").value,
                self.mpos(meta))


_FIELD_WORDS = {"src": "from", "dst": "to", "icmp_type": "type", "ct_state": "ct state",
                "sack_perm": "sack-perm"}


def _assemble(items, rep: Reporter, text: str, filename: str, comments) -> n.Policy:
    fields: dict = {"sets": [], "rules": [], "stateful": [], "test_lists": [], "expects": []}
    single = {"name": "policy", "default": "default", "mode": "mode",
              "malformed": "malformed", "lockout_guard": "lockout-guard"}
    for kind, value in items:
        if kind in single:
            if kind in fields:
                rep.error(value.pos, f"'{single[kind]}' is given twice",
                          f"keep one; the first is on line {fields[kind].pos.line}")
            else:
                fields[kind] = value
        elif kind == "set":
            fields["sets"].append(value)
        elif kind == "rule":
            fields["rules"].append(value)
        elif kind == "stateful":
            fields["stateful"].extend(value)
        elif kind == "test_list":
            fields["test_lists"].append(value)
        elif kind == "expect":
            fields["expects"].append(value)
    for k in ("sets", "rules", "stateful", "test_lists", "expects"):
        fields[k] = tuple(fields[k])
    return n.Policy(**fields, filename=filename, source=text, comments=tuple(comments))


def parse(text: str, filename: str = "<policy>") -> n.Policy:
    """Parse policy text. Raises `ParseError` with diagnostics when it is not valid syntax."""
    if not isinstance(text, str):
        raise TypeError("parse() takes the policy text as str")
    rep = Reporter(text, filename)
    if len(text) > MAX_SOURCE_BYTES:
        rep.error(n.Pos(1, 1, 1, 2), f"the file is larger than {MAX_SOURCE_BYTES} bytes",
                  "keep large address lists on the hub and reference them with list \"NAME\"")
        raise ParseError(rep.items)
    comments: list[n.Comment] = []
    tree = _parse_tree(text, filename, "start", comments)
    items = _Build(rep).transform(tree)
    policy = _assemble(items, rep, text, filename, comments)
    if rep.has_errors:
        raise ParseError(rep.items)
    return policy


def parse_packet(text: str, filename: str = "<packet>") -> n.Expect:
    """Parse a packet description as written after `expect VERDICT` (used by `rules eval`)."""
    rep = Reporter(text, filename)
    tree = _parse_tree(text, filename, "packet_only", [])
    result = _Build(rep).transform(tree)
    if rep.has_errors:
        raise ParseError(rep.items)
    return result


def _parse_tree(text: str, filename: str, start: str, comments: list) -> Tree:
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise ParseError(_syntax_diagnostic(text, filename, exc, start)) from None
    except _NumberTooLong as exc:
        tok, rep = exc.tok, Reporter(text, filename)
        rep.error(n.Pos(tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 2),
                  f"a number may have at most {MAX_NUMBER_DIGITS} digits")
        raise ParseError(rep.items) from None
    except LarkError as exc:  # pragma: no cover - any other lark failure is still bad input
        rep = Reporter(text, filename)
        rep.error(n.Pos(1, 1, 1, 2), f"cannot parse: {exc}")
        raise ParseError(rep.items) from None
    comments.extend(_comments(text))
    return tree


def _comments(text: str) -> list[n.Comment]:
    """Comments and where they start. Strings never span lines, so quotes toggle per line."""
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        quoted = False
        for col, ch in enumerate(line, 1):
            if ch == '"':
                quoted = not quoted
            elif ch == "#" and not quoted:
                out.append(n.Comment(line_no, col, line[col - 1:].rstrip()))
                break
    return out
