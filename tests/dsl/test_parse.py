"""The parser: grammar shape, spans, friendly errors, recovery, and bad files."""

import logging
import time

import lark
import pytest
from hypothesis import HealthCheck, given, settings

from dsl import ast as A
from dsl.parse import GRAMMAR, MAX_BYTES, parse_source
from dsl.walk import children, walk
from tests.conftest import CAMPAIGNS
from tests.dsl import strategies


def test_known_conflicts():
    """The grammar relies on shift preference only for trailing time windows (see grammar.lark)."""
    records = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Grab()
    lark.logger.addHandler(handler)
    old = lark.logger.level
    lark.logger.setLevel(logging.DEBUG)
    try:
        lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual", debug=True)
    finally:
        lark.logger.setLevel(old)
        lark.logger.removeHandler(handler)
    terminals = {m.split("terminal ")[1].split(":")[0] for m in records if m.startswith("Shift/Reduce")}
    rules = {m.strip() for m in records if m.strip().startswith("* <")}
    assert terminals == {"WITHIN", "BEFORE", "AFTER", "BETWEEN", "SINCE"}
    assert rules == {"* <comparison : sum>"}
    assert not any("Reduce/Reduce" in m for m in records)


def test_tour_example_parses_with_spans_on_every_node():
    for path in sorted(CAMPAIGNS.glob("*.camp")):
        text = path.read_text(encoding="utf-8")
        module, diags, _ = parse_source(text, path.name)
        assert diags == []
        for node in walk(module):
            assert node.span.known, (path.name, node)
            assert 0 <= node.span.start < node.span.end <= len(text)
            if isinstance(node, A.Ident):
                assert text[node.span.start:node.span.end] == node.name


def test_unicode_names_and_strings():
    m, d, _ = parse_source('segment 高价值 "高价值客户" = city = "北京" and name starts with "张"\n')
    assert d == []
    assert m.decls[0].name.name == "高价值" and m.decls[0].title == "高价值客户"


def test_trailing_window_hoisting():
    m, _, _ = parse_source('segment s = count(orders where coupon_used within 180d) >= 1\n'
                           'segment t = count(orders where not coupon_used within 7d) >= 1\n'
                           'segment u = count(orders within 30d where shipped within 3d) >= 1\n')
    a, b, c = (d.expr.left for d in m.decls)
    assert a.where.parts == ["coupon_used"] and a.window.duration.value == 180
    assert isinstance(b.where, A.Not) and b.window.duration.value == 7
    assert c.window.duration.value == 30 and isinstance(c.where, A.And)  # both windows hold


def test_event_trigger_filter_uses_if():
    m, d, _ = parse_source('campaign c {\n  when on visits if source = "app" delay 30m\n'
                           '  where push template "x.j2"\n}\n')
    assert d == []
    when, where = m.decls[0].sections
    assert when.trigger.condition.right.value == "app" and when.trigger.delay.text() == "30m"
    assert where.channels[0].channel.name == "push"


@pytest.mark.parametrize("src, code, line, col, words", [
    ("segment a = count(orders within 7) > 1\n", "E104", 1, 33, "duration like `7d`"),
    ("segment a = x == 1\n", "E104", 1, 16, "single `=`"),
    ('campaign c {\n  when on visits where source = "app"\n}\n', "E104", 2, 31, "`if`"),
    ('segment a = "abc\n', "E105", 1, 13, "closing quote"),
    ("segment a = x && y\n", "E105", 1, 15, "`and`"),
    ("campaign c {\n  who x = 1\n", "E108", 3, 1, "missing"),
    ('segment a = city = "\\q"\n', "E107", 1, 20, "escape"),
])
def test_friendly_errors(src, code, line, col, words):
    _, diags, _ = parse_source(src.encode(), "f.camp")
    assert [d.code for d in diags] == [code]
    d = diags[0]
    assert (d.span.line, d.span.column) == (line, col), d
    assert words in d.message + " ".join(d.hints)
    assert "Token(" not in d.message and "Expected one of" not in d.message


def test_recovery_reports_each_broken_declaration_and_keeps_the_rest():
    src = 'segment a = b\nsegment c = = d\nsegment e = f\ncampaign x { who y @ }\nsegment z = 1 > "\\q"\nsegment ok = g\n'
    m, diags, _ = parse_source(src)
    assert [(d.code, d.span.line) for d in diags] == [("E104", 2), ("E105", 4), ("E107", 5)]
    assert [d.name.name for d in m.decls] == ["a", "e", "ok"]


# ------------------------------------------------------------------ bad files

def _only(diags, code):
    assert [d.code for d in diags] == [code], diags
    assert diags[0].span.line >= 1 and diags[0].span.column >= 1
    return diags[0]


def test_empty_file():
    for src in (b"", b"   \n\n", b"# just a comment\n"):
        m, diags, _ = parse_source(src, "e.camp")
        _only(diags, "W106")
        assert m.decls == []


def test_binary_file():
    data = bytes(range(256)) * 40
    _, diags, _ = parse_source(data, "b.camp")
    _only(diags, "E102")


def test_not_utf8():
    data = 'segment a = city = "北京"\nsegment b = city = "'.encode() + "上海".encode("gb18030") + b'"\n'
    d = _only(parse_source(data, "g.camp")[1], "E101")
    assert (d.span.line, d.span.column) == (2, 21)


def test_ten_megabytes_is_refused_quickly():
    data = (b'segment s = city = "x"\n' * (10 * 1024 * 1024 // 23 + 1))
    assert len(data) >= 10 * 1024 * 1024 > MAX_BYTES
    t = time.perf_counter()
    d = _only(parse_source(data, "big.camp")[1], "E103")
    assert time.perf_counter() - t < 2
    assert "10.0 MiB" in d.message


def test_thousand_nested_parentheses():
    src = "segment s = " + "(" * 1000 + "x" + ")" * 1000 + "\n"
    t = time.perf_counter()
    d = _only(parse_source(src, "n.camp")[1], "E106")
    assert time.perf_counter() - t < 2
    assert d.span.line == 1 and d.span.column == 12 + 65


@pytest.mark.parametrize("src", [
    "segment s = " + " + ".join(["1"] * 5000) + " > 0\n",
    "segment s = " + "not " * 5000 + "x\n",
    "segment s = " + " and ".join(["x"] * 5000) + "\n",
])
def test_long_chains_do_not_overflow(src):
    t = time.perf_counter()
    m, diags, _ = parse_source(src, "c.camp")
    assert time.perf_counter() - t < 10
    assert all(d.code == "E106" for d in diags)
    if not diags:  # `and` chains are flat, so they are fine
        assert len(m.decls) == 1


def _every_node_value(node: A.Node) -> list[A.Node]:
    """The nodes directly under `node`, found by looking at every field's value (what dsl.walk did before it
    looked only at the fields whose declared type can hold a node)."""
    out: list[A.Node] = []
    for value in node.__dict__.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        out.extend(item for item in items if isinstance(item, A.Node))
    return out


def _assert_walk_misses_nothing(module: A.Module) -> int:
    seen = 0
    for node in walk(module):
        assert list(children(node)) == _every_node_value(node), type(node).__name__
        seen += 1
    return seen


def test_walk_visits_every_node_of_the_bundled_and_example_files():
    files = [*sorted(CAMPAIGNS.glob("*.camp")), *sorted((CAMPAIGNS.parent / "examples").rglob("*.camp"))]
    assert len(files) > 10
    assert sum(_assert_walk_misses_nothing(parse_source(p.read_text(encoding="utf-8"), p.name)[0]) for p in files) > 1000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.module)
def test_walk_visits_every_node_of_generated_modules(module):
    _assert_walk_misses_nothing(module)
