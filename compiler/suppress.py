"""A workspace's diagnostics -> those it asked to see: `[lint] select / ignore` in camp.toml, and inline
`# camp: ignore[W105]` comments (several codes separated by commas; `# camp: ignore` alone: every warning;
a reason may follow: `# camp: ignore[W105] both target the same users on purpose`).

An inline comment applies to its own line, or, on a line of its own, to the next line that is not a comment.
Only warnings can be ignored. A suppression naming an error, or one that matched nothing, is W107 (so stale
suppressions do not pile up).

    suppress(diagnostics, ws) -> diagnostics
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from compiler.workspace import Workspace
from dsl.codes import CODES
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.span import Span

_IGNORE = re.compile(r"#\s*camp:\s*ignore(?:\[([^\]]*)\])?(?=\s|$)")  # a reason may follow


@dataclass
class _Ignore:
    line: int  # of the comment
    column: int
    target: int  # the line it applies to
    codes: list[str] | None  # None: every warning
    used: set[str] = field(default_factory=set)


def suppress(diags: list[Diagnostic], ws: Workspace) -> list[Diagnostic]:
    lint = ws.config.lint
    ignores = {m.path: _ignores(m, ws.sources.get(m.path, "")) for m in ws.modules}
    out: list[Diagnostic] = []
    for d in diags:
        if d.is_error:
            out.append(d)
            continue
        if not lint.reports(d.code):
            continue
        hit = next((i for i in ignores.get(d.file, []) if i.target == d.span.line
                    and (i.codes is None or d.code in i.codes)), None)
        if hit is not None:
            hit.used.add(d.code)
            continue
        out.append(d)
    for file, found in ignores.items():
        for i in found:
            span = Span.point(i.line, i.column)
            bad = [c for c in i.codes or [] if CODES.get(c) is None or CODES[c].severity != "warning"]
            if bad:
                out.append(diagnostic("W107", f"`{', '.join(bad)}` cannot be ignored", span, file,
                                      ["only warnings can be ignored; fix the error instead"
                                       if any(c in CODES for c in bad) else "no such code: `camp explain` lists them"]))
            elif not i.used and lint.reports("W107"):
                out.append(diagnostic("W107", "this suppression matches nothing on its line", span, file,
                                      ["remove it: the warning it was for is gone"]))
    return sorted(out, key=Diagnostic.sort_key)


def _ignores(module, text: str) -> list[_Ignore]:
    rows = text.splitlines()
    out = []
    for c in module.comments:
        m = _IGNORE.search(c.text)
        if not m:
            continue
        target = c.line
        if c.own_line:  # the next line that holds code (not blank, not only a comment)
            target = c.line + 1
            while target <= len(rows) and (not rows[target - 1].strip() or rows[target - 1].lstrip().startswith("#")):
                target += 1
        codes = [x.strip().upper() for x in m.group(1).split(",") if x.strip()] if m.group(1) is not None else None
        out.append(_Ignore(c.line, c.column, target, codes))
    return out
