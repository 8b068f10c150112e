"""The IR carries spans and the lints read the IR alone.

Every IR node checked from the bundled workspaces points at the text it came from, inside its own
file and inside its parent's span; lint_program takes no AST; the lints report where they always did.
"""

from __future__ import annotations

import inspect
import shutil
import typing
from decimal import Decimal
from pathlib import Path

import pytest

from compiler import ir as I
from compiler import program as P
from compiler import types as T
from compiler.check import check_workspace
from compiler.lint import lint_program
from compiler.workspace import load_workspace
from dsl.span import Span
from tests.codes.examples import BASE, run_example
from tests.conftest import CAMPAIGNS, ROOT

WORKSPACES = [CAMPAIGNS, ROOT / "examples" / "online_retail"]
NODES = (*typing.get_args(I.Expr), I.Win)  # the expression nodes and windows (Dur and Type are values)


def _conditions(program: P.Program) -> list[tuple[str, str, I.Expr]]:
    """(file, where, condition) for every condition of the program."""
    out: list[tuple[str, str, I.Expr]] = []
    for s in program.segments.values():
        out.append((s.file, f"segment {s.name}", s.expr))
    for c in program.classifications.values():
        out += [(c.file, f"classify {c.name} {label}", e) for label, e in c.rules if e is not None]
    for c in program.campaigns.values():
        found = [("audience", c.audience), *(("exclude", e) for e in c.excludes), ("goal", c.goal),
                 ("trigger", c.schedule.condition if c.schedule else None)]
        for step in c.steps:
            found += [(f"step {step.name} unless", step.unless),
                      *((f"step {step.name} branch", cond) for cond, _ in step.branches)]
        out += [(c.file, f"campaign {c.name} {what}", e) for what, e in found if e is not None]
    return out


def _line_column(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _words(n) -> list[str]:
    """Text the source of n must contain."""
    match n:
        case I.UserAttr(field=name) | I.EventField(field=name):
            return [name]
        case I.Agg():
            return [n.event]
        case I.Cmp():
            return [n.op, *(side.field for side in (n.left, n.right) if isinstance(side, (I.UserAttr, I.EventField)))]
        case I.InSegment():
            return [n.name]
        case I.LabelIs():
            return [n.classification, *n.labels]
        case I.Label():
            return [n.classification]
        case I.HasTag():
            return [n.tag]
        case I.Redeemed():
            return ["redeemed", n.code]
        case I.TextMatch():
            return [n.pattern]
        case I.Win():
            return [n.op, *([n.step] if n.step else [])]
        case I.Const(value=str() as value):
            return [value]
    return []


def _check_node(n, parent: Span, text: str, where: str) -> Span:
    span = n.span
    assert span is not None and span.known, f"{where}: {n!r} has no span"
    assert 0 <= parent.start <= span.start < span.end <= parent.end <= len(text), f"{where}: {n!r} at {span}"
    assert _line_column(text, span.start) == (span.line, span.column), f"{where}: {n!r} at {span}"
    source = text[span.start:span.end]
    for word in _words(n):
        assert word in source, f"{where}: {n!r} comes from {source!r}"
    return span


@pytest.mark.parametrize("root", WORKSPACES, ids=lambda p: p.name)
def test_every_ir_node_points_at_its_text(root: Path):
    ws = load_workspace(root)
    assert not isinstance(ws, Exception)
    result = check_workspace(ws)
    assert result.errors == []
    seen: set[type] = set()
    for file, where, expr in _conditions(result.program):
        text = ws.sources[file]
        stack = [(expr, Span(line=1, column=1, end_line=0, end_column=0, start=0, end=len(text)))]
        while stack:
            n, parent = stack.pop()
            if not isinstance(n, NODES):
                continue
            seen.add(type(n))
            span = _check_node(n, parent, text, f"{file} {where}")
            stack += [(child, span) for child in I.children(n)]
    assert {I.Cmp, I.Agg, I.UserAttr, I.EventField, I.Const, I.Win, I.And, I.InSegment, I.LabelIs} <= seen


def _text(text: str, span: Span) -> str:
    assert span.known and 0 <= span.start < span.end <= len(text), span
    assert _line_column(text, span.start) == (span.line, span.column), span
    return text[span.start:span.end]


@pytest.mark.parametrize("root", WORKSPACES, ids=lambda p: p.name)
def test_the_program_model_points_at_its_clauses(root: Path):
    ws = load_workspace(root)
    assert not isinstance(ws, Exception)
    program = check_workspace(ws).program
    kinds: set[str] = set()
    for c in program.campaigns.values():
        text = ws.sources[c.file]
        assert _text(text, c.name_span) == c.name
        assert _text(text, c.who_span).startswith("who")
        assert c.schedule is not None and _text(text, c.schedule.span).startswith("when")
        if c.how_much_span.known:
            kinds.add("how much")
            assert _text(text, c.how_much_span).startswith("how much")
        for name, resource in c.resources.items():
            kinds.add(type(resource).__name__)
            assert name in _text(text, resource.span)
        for step in c.steps:
            assert _text(text, step.name_span) == step.name
            assert len(step.branch_spans) == len(step.branches) and len(step.variant_spans) == len(step.variants)
            for (cond, _), span in zip(step.branches, step.branch_spans, strict=True):
                kinds.add("branch")
                branch = _text(text, span)
                assert branch.startswith("otherwise" if cond is None else "if"), branch
                assert cond is None or cond.span is not None and span.start < cond.span.start < span.end
            for (name, _, _), span in zip(step.variants, step.variant_spans, strict=True):
                kinds.add("variant")
                assert _text(text, span).startswith(f"variant {name}")
    if root == CAMPAIGNS:
        assert {"how much", "Coupon", "Points", "RedPacket", "branch", "variant"} <= kinds, kinds


def test_spans_leave_equality_hash_and_repr_alone():
    def age_at_least_one(span: Span) -> I.Cmp:
        return I.Cmp(">=", I.UserAttr("age", "age", T.NUMBER, span=span), I.Const(Decimal(1), T.NUMBER, span=span),
                     T.NUMBER, span=span)

    a, b = age_at_least_one(Span.point(1, 1)), age_at_least_one(Span.point(9, 9, 200))
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)


def test_lint_program_takes_no_ast():
    params = inspect.signature(lint_program).parameters
    assert list(params) == ["program", "report"]
    hints = typing.get_type_hints(lint_program)
    assert all(getattr(t, "__module__", "") != "dsl.ast" for t in hints.values()), hints


@pytest.mark.parametrize(("code", "line", "column"), [
    ("W101", 2, 7),  # the count of the trigger event in `who`
    ("W102", 9, 7),  # the second branch
    ("W103", 7, 5),  # the step
    ("W104", 8, 3),  # the `how much` section
    ("W105", 20, 5),  # the second campaign's `exclusive`
])
def test_lints_report_where_they_did(code, line, column, tmp_path):
    hits = [d for d in run_example(code, "bad", tmp_path) if d.code == code]
    assert [(Path(d.file).name, d.span.line, d.span.column) for d in hits] == [("example.camp", line, column)]


W101_CASES = {
    "through_segment": ("segment buyers = count(orders within 30d) >= 1\n"
                        "campaign ex {\n  who buyers and city = \"北京\"\n  when on orders first\n"
                        "  where push template \"ok.j2\"\n  how\n    step touch: notify where\n}\n", (3, 3)),
    "in_exclude": ("campaign ex {\n  who city = \"北京\"\n    exclude city = \"上海\" or any(orders within 7d)\n"
                   "  when on orders first\n  where push template \"ok.j2\"\n  how\n    step touch: notify where\n}\n",
                   (3, 28)),
    "first_of_two": ("campaign ex {\n  who not any(orders within 7d) and count(orders within 30d) < 3\n"
                     "  when on orders first\n  where push template \"ok.j2\"\n  how\n    step touch: notify where\n}\n",
                     (2, 11)),
}


@pytest.mark.parametrize("case", sorted(W101_CASES))
def test_w101_points_at_the_first_count_or_the_who_section(case, tmp_path):
    source, (line, column) = W101_CASES[case]
    shutil.copytree(BASE, tmp_path / "ws")
    (tmp_path / "ws" / "example.camp").write_text(source, encoding="utf-8")
    ws = load_workspace(tmp_path / "ws")
    assert not isinstance(ws, Exception)
    hits = [d for d in check_workspace(ws).diagnostics if d.code == "W101" or d.is_error]
    assert [(d.code, d.span.line, d.span.column) for d in hits] == [("W101", line, column)]


def test_redeemed_points_at_its_text(tmp_path: Path):
    import shutil

    from tests.codes.examples import BASE, example_path

    root = tmp_path / "ws"
    shutil.copytree(BASE, root)
    good = example_path("E418", "good")
    assert good is not None
    shutil.copy(good, root / "example.camp")
    ws = load_workspace(root)
    assert not isinstance(ws, Exception)
    program = check_workspace(ws).program
    unless = program.campaigns["ex"].steps[1].unless
    assert isinstance(unless, I.Redeemed) and unless.code == "HIGH20"
    text = ws.sources[program.campaigns["ex"].file]
    assert unless.span is not None and text[unless.span.start:unless.span.end] == "redeemed(HIGH20)"
