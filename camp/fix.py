"""`camp check --fix`: apply the fixes that are certain: a name with exactly one did-you-mean candidate, where
the source text at the diagnostic's span is that name (bare, after a dot, or quoted). Anything else is left
for a person.

    apply_fixes(diagnostics, paths) -> [(file, line, old, new)]   (files rewritten)
"""

from __future__ import annotations

from pathlib import Path

from dsl.diagnostics import Diagnostic


def apply_fixes(diags: list[Diagnostic], paths: dict[str, Path]) -> list[tuple[str, int, str, str]]:
    """`paths`: display path -> the file. Only .camp files are rewritten (camp.toml diagnostics point at a line,
    not at the word)."""
    done: list[tuple[str, int, str, str]] = []
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diags:
        if d.fix is not None and d.file in paths and paths[d.file].suffix == ".camp" and d.span.known:
            by_file.setdefault(d.file, []).append(d)
    for file, found in by_file.items():
        path = paths[file]
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        edits: dict[tuple[int, int, int, int], tuple[str, str]] = {}
        for d in found:
            s = d.span
            if s.line != s.end_line or s.line > len(lines):
                continue
            row = lines[s.line - 1]
            old = row[s.column - 1:s.end_column - 1]
            new = _replacement(old, *d.fix) if d.fix else None
            if new is not None:
                edits[(s.line, s.column, s.end_column, id(d))] = (old, new)
        for (line, col, end, _), (old, new) in sorted(edits.items(), reverse=True):  # right to left, bottom up
            row = lines[line - 1]
            lines[line - 1] = row[:col - 1] + new + row[end - 1:]
            done.append((file, line, old, new))
        if any(f == file for f, *_ in done):
            path.write_text("\n".join(lines), encoding="utf-8")
    return sorted(done)


def _replacement(old: str, word: str, candidate: str) -> str | None:
    if old == word:
        return candidate
    if old.endswith("." + word):
        return old[: -len(word)] + candidate
    for q in ('"', "'"):
        if old == f"{q}{word}{q}":
            return f"{q}{candidate}{q}"
    return None
