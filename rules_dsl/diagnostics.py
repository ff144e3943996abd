"""Diagnostics: what the checker tells the author, with the line and a caret."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding. `line`/`col` are 1-based; 0 means "the whole file"."""

    severity: Severity
    filename: str
    line: int
    col: int
    message: str
    hint: str | None = None
    source: str = ""
    width: int = 1

    def render_short(self) -> str:
        return f"{self.filename}:{self.line}:{self.col}: {self.severity}: {self.message}"

    def render(self) -> str:
        """`FILE:LINE:COL: error: msg`, the source line, a caret line, then `hint: ...`."""
        out = [self.render_short()]
        if self.line > 0 and self.source:
            text = self.source.expandtabs(1)
            out.append("    " + text)
            width = max(1, min(self.width, len(text) - self.col + 1))
            out.append("    " + " " * (self.col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def source_line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


class Reporter:
    """Collects diagnostics against one source text."""

    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        self._lines = text.splitlines()
        self.items: list[Diagnostic] = []

    def add(self, severity: Severity, pos, message: str, hint: str | None = None) -> None:
        line = getattr(pos, "line", 0) or 0
        col = getattr(pos, "col", 0) or 0
        src = self._lines[line - 1] if 0 < line <= len(self._lines) else ""
        width = 1
        end_line, end_col = getattr(pos, "end_line", 0), getattr(pos, "end_col", 0)
        if end_line == line and end_col > col:
            width = end_col - col
        self.items.append(Diagnostic(severity, self.filename, line, max(col, 1) if line else 0,
                                     message, hint, src, width))

    def error(self, pos, message: str, hint: str | None = None) -> None:
        self.add("error", pos, message, hint)

    def warning(self, pos, message: str, hint: str | None = None) -> None:
        self.add("warning", pos, message, hint)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)
