"""The one exception hierarchy of `rules_dsl`.

    DslError(Exception)          .diagnostics: list[Diagnostic] — always at least one
    ├── ParseError               the text is not in the language (the author's fault)
    ├── CheckError               the text parses but `check` found errors (the author's fault)
    ├── PlanError                a Plan document is not valid for this schema (the sender's
    │                            fault: a corrupt or foreign Plan reached `Plan.from_json`)
    └── TemplateError            a template file is wrong (its author's fault; `templates`)
    ParameterError(ValueError)   values for a template's parameters are wrong (the caller's
                                 fault): `.problems` is ((parameter, why), ...)
    AddressError(ValueError)     a list entry or packed list is not an address/prefix in an
                                 accepted form (`addresses`; no position to point at)
    CaptureError(ValueError)     a pcap/pcapng capture cannot be read on (`capture`; the
                                 file's fault): `.offset` is the byte where it went wrong

Nothing else escapes the package for bad input: `load` never raises for it at all, the
other entry points raise only these. A `DslError` that escapes for *valid* input is a bug.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diagnostics import Diagnostic


class DslError(Exception):
    """Bad input. `.diagnostics` says where and why, ready to `render()`."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0].render_short() if self.diagnostics else "invalid input"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class ParseError(DslError):
    """The policy text is not in the language."""


class CheckError(DslError):
    """The policy parses, but the checker found errors: it must not be compiled."""


class PlanError(DslError):
    """A Plan document does not follow the schema (wrong version, types, references)."""


class TemplateError(DslError):
    """A template file is not valid: bad TOML, keys, parameters or placeholders."""


class ParameterError(ValueError):
    """Template parameters that cannot be used; each problem names its parameter."""

    def __init__(self, problems: tuple[tuple[str, str], ...]):
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.problems))


class AddressError(ValueError):
    """Not an address or prefix in an accepted form, or not the packed binary form."""


class CaptureError(ValueError):
    """A capture file is not (or no longer) pcap/pcapng we can read. `.offset`: the byte."""

    def __init__(self, offset: int, message: str):
        self.offset = offset
        self.message = message
        super().__init__(f"byte {offset}: {message}")
