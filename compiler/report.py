"""A diagnostics collector that knows which file it is looking at, and did-you-mean hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dsl.diagnostics import Diagnostic, Suggestion, diagnostic
from dsl.span import Span


class Report:
    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self.file = ""

    def __call__(self, code: str, message: str, span: Span | None, hints: Iterable[str] = (), file: str | None = None):
        self.items.append(diagnostic(code, message, span, self.file if file is None else file, hints))


def did_you_mean(word: str, candidates: Iterable[str], fmt: str = "`{}`") -> str:
    """"did you mean `x`?" for the close candidates, "" without any; with exactly one, a Suggestion that
    `camp check --fix` may apply."""
    cands = list(dict.fromkeys(c for c in candidates if c))
    close = difflib.get_close_matches(word, cands, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in cands}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    if not close:
        return ""
    return Suggestion("did you mean " + " or ".join(fmt.format(c) for c in close) + "?", word,
                      close[0] if len(close) == 1 else None)


def suggest(word: str, candidates: Iterable[str], what: str, fmt: str = "`{}`", none: str = "", limit: int = 12) -> str:
    """A did-you-mean hint, else the list of what there is (`events: orders, visits`), else `none`."""
    cands = list(dict.fromkeys(c for c in candidates if c))
    close = did_you_mean(word, cands, fmt)
    if close or not cands:
        return close or none
    shown = ", ".join(fmt.format(c) for c in cands[:limit]) + (", …" if len(cands) > limit else "")
    return f"{what}: {shown}"
