"""The one Diagnostic type, shared by every stage, and its renderers.

A diagnostic is a code (stable, documented in `dsl.codes` and docs/diagnostics.md),
a severity, a message a non-programmer understands, the file and span it points
at, and hints ("did you mean `orders.amount`?").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dsl.codes import CODES
from dsl.span import Span

Severity = Literal["error", "warning"]


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    severity: Severity
    message: str
    file: str = ""
    span: Span = Span.unknown()
    hints: tuple[str, ...] = ()
    fix: tuple[str, str] | None = None  # (the word at the span, its one certain replacement): `camp check --fix`

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        return (self.file, self.span.line, self.span.column, self.code, self.message)


def diagnostic(code: str, message: str, span: Span | None = None, file: str = "",
               hints: Iterable[str] = ()) -> Diagnostic:
    """Make a diagnostic whose severity comes from the code registry. A hint that is a Suggestion with one
    candidate makes the diagnostic fixable (`fix`)."""
    hints = tuple(h for h in hints if h)
    fix = next(((h.word, h.only) for h in hints if isinstance(h, Suggestion) and h.only is not None), None)
    return Diagnostic(code=code, severity=CODES[code].severity, message=message, file=file,
                      span=span or Span.unknown(), hints=tuple(str(h) for h in hints), fix=fix)


class Suggestion(str):
    """A did-you-mean hint that knows the word it corrects and, when there is exactly one candidate, it."""

    word: str
    only: str | None

    def __new__(cls, text: str, word: str, only: str | None) -> Suggestion:
        obj = super().__new__(cls, text)
        obj.word, obj.only = word, only
        return obj


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(s: str) -> str:
    """Any Python string -> one that every UTF-8 writer accepts: lone surrogates (from an escape like
    `"\\ud800"` or an undecodable file name) become the escape text `\\ud800`."""
    if not _SURROGATE.search(s):
        return s
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", s)


def render_text(diags: Iterable[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """rustc-style: `path:line:col: error[E201]: message`, the source line, a caret, hints."""
    out: list[str] = []
    for d in diags:
        where = d.file or "<input>"
        if d.span.known:
            where += f":{d.span.line}:{d.span.column}"
        label = f"{d.severity}[{d.code}]"
        if color:
            label = ("\x1b[1;31m" if d.is_error else "\x1b[1;33m") + label + "\x1b[0m"
        out.append(printable(f"{where}: {label}: {d.message}"))
        text = sources.get(d.file)
        if text is not None and d.span.known:
            lines = text.split("\n")
            if 0 < d.span.line <= len(lines):
                src = printable(lines[d.span.line - 1].replace("\t", " "))
                gutter = f"{d.span.line:>5} | "
                out.append(gutter + src)
                width = (d.span.end_column - d.span.column) if d.span.end_line == d.span.line else len(src) - d.span.column + 1
                caret = " " * (len(gutter) - 2) + "| " + " " * (d.span.column - 1) + "^" * max(1, width)
                out.append(caret)
        for h in d.hints:
            out.append(printable(f"      = hint: {h}"))
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    """A JSON array; every string is valid Unicode (see `printable`), NUL and newlines are escaped by JSON."""
    return json.dumps([
        {"code": d.code, "severity": d.severity, "message": printable(d.message), "file": printable(d.file),
         "line": d.span.line, "column": d.span.column, "end_line": d.span.end_line,
         "end_column": d.span.end_column, "hints": [printable(h) for h in d.hints],
         **({"fix": {"replace": printable(d.fix[0]), "with": printable(d.fix[1])}} if d.fix else {})}
        for d in diags
    ], ensure_ascii=False, indent=2)


def render_github(diags: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands: one `::error file=..,line=..::msg` per diagnostic.

    Escaping as the runner reads it: `%`, CR and LF in the message; also `:` and `,` in properties.
    NUL and other control characters would end or garble the line in a log: they are shown as `\\xNN`.
    """
    def esc(s: str) -> str:
        s = printable(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", s)

    def prop(s: str) -> str:
        return esc(s).replace(":", "%3A").replace(",", "%2C")

    lines = []
    for d in diags:
        props = [f"file={prop(d.file)}"]
        if d.span.known:
            props += [f"line={d.span.line}", f"col={d.span.column}",
                      f"endLine={d.span.end_line}", f"endColumn={d.span.end_column}"]
        props.append(f"title={prop(d.code)}")
        msg = d.message + "".join(f"\nhint: {h}" for h in d.hints)
        lines.append(f"::{d.severity} {','.join(props)}::{esc(msg)}")
    return "\n".join(lines)
