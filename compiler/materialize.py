"""`materialize NAME, ... daily at HH:MM` declarations -> the program's materialised segments and
classifications (program.Materialized), checked: each name a segment or classification of the workspace
(E215), named once (E205), the time of day real (E401).

Runs before the segments are checked, so the expression checker knows which classifications keep a
history (`C was X 90d ago`, `moved C from X to Y within 30d`: E216 otherwise).
"""

from __future__ import annotations

from compiler.limits import check_time_of_day
from compiler.program import Materialized
from compiler.report import Report, suggest
from dsl import ast as A


def check_materialize(modules: list[A.Module], segments: set[str], classifications: set[str],
                      report: Report) -> dict[str, Materialized]:
    out: dict[str, Materialized] = {}
    for module in modules:
        report.file = module.path
        for d in module.decls:
            if not isinstance(d, A.MaterializeDecl):
                continue
            if not check_time_of_day(d.at, d, report):
                continue
            for ident in d.names:
                name = ident.name
                if name in out:
                    first = out[name]
                    report("E205", f"`{name}` is already materialised", ident.span,
                           [f"first named at {first.file}:{first.span.line}; name it once"])
                    continue
                if name not in segments and name not in classifications:
                    report("E215", f"`{name}` is neither a segment nor a classification, so it has no labels to "
                                   "materialise", ident.span,
                           [suggest(name, sorted(segments | classifications), "segments and classifications")])
                    continue
                kind = "class" if name in classifications else "segment"
                out[name] = Materialized(name, kind, d.at, module.path, ident.span)
    return out
