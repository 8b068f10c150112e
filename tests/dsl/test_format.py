"""The formatter: parse(format(ast)) == ast, idempotent, comments kept."""

from hypothesis import HealthCheck, given, settings

from dsl.ast import same_tree, without_spans
from dsl.format import format_module
from dsl.parse import parse_source
from tests.conftest import CAMPAIGNS
from tests.dsl import strategies as S
from tests.profiles import examples


def _reparse(text: str):
    module, diags, _ = parse_source(text)
    assert not [d for d in diags if d.is_error], (diags, text)
    return module


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.module)
def test_format_then_parse_gives_the_same_tree(module):
    text = format_module(module)
    again = _reparse(text)
    assert without_spans(again) == without_spans(module), text


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.big_expr)
def test_expressions_round_trip_inside_a_segment(e):
    from dsl import ast as A

    module = A.Module(decls=[A.SegmentDecl(name=A.Ident(name="s"), expr=e)])
    text = format_module(module)
    assert same_tree(_reparse(text), module), text


def test_bundled_campaigns_are_formatted():
    for path in sorted(CAMPAIGNS.glob("*.camp")):
        text = path.read_text(encoding="utf-8")
        assert format_module(_reparse(text)) == text, path.name


def test_idempotent_and_comments_kept():
    src = """# header comment

segment a = x   # trailing on a
# before b
segment   b =y and   z
classify c by first match {  # opens
  # inside
  p = x > 1
  q = otherwise  # last
}
# at the end
"""
    once = format_module(_reparse(src))
    twice = format_module(_reparse(once))
    assert once == twice
    for c in ["# header comment", "# trailing on a", "# before b", "# opens", "# inside", "# last", "# at the end"]:
        assert once.count(c) == 1, (c, once)
    assert once.startswith("# header comment\n\nsegment a = x  # trailing on a\n")
    assert "# before b\nsegment b = y and z\n" in once


def test_hoisted_window_is_printed_where_it_reparses_the_same():
    src = 'segment s = count(orders where coupon_used within 180d) >= 1\n'
    m = _reparse(src)
    agg = m.decls[0].expr.left
    assert agg.where.parts == ["coupon_used"] and agg.window.op == "within"
    assert format_module(m) == src
    src2 = 'segment s = count(orders where (x within 3d)) >= 1\n'
    m2 = _reparse(src2)
    assert m2.decls[0].expr.left.window is None
    assert format_module(m2) == src2
