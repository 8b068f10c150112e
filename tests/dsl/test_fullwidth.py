"""Full-width punctuation and curly quotes read as ASCII; what is between quotes stays as written."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import ast as A
from dsl.ast import same_tree
from dsl.format import format_module
from dsl.parse import parse_source
from dsl.punct import ascii_punctuation
from dsl.walk import walk
from tests.conftest import CAMPAIGNS
from tests.dsl import strategies as S

# What the grammar calls a string, and a comment, in ASCII text (dsl/grammar.lark STRING and COMMENT).
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
_WIDE = {":": "：", ",": "，", "(": "（", ")": "）", "=": "＝", "{": "｛", "}": "｝"}
_QUOTES = "\"“”＂"


def widen(text: str, every: int = 1) -> str:
    """What an input method would have typed: full-width punctuation outside strings and comments, and
    curly quotes around strings whose content has no quote of any kind (every n-th occurrence)."""
    out, pos, n = [], 0, 0
    for m in _STRING_OR_COMMENT.finditer(text):
        for ch in text[pos:m.start()]:
            n += ch in _WIDE
            out.append(_WIDE[ch] if ch in _WIDE and n % every == 0 else ch)
        tok = m.group()
        if tok.startswith('"') and not any(q in tok[1:-1] for q in _QUOTES + "‘’"):
            tok = "“" + tok[1:-1] + "”"
        out.append(tok)
        pos = m.end()
    out.extend(_WIDE.get(ch, ch) for ch in text[pos:])
    return "".join(out)


def _parse(text: str) -> A.Module:
    module, diags, _ = parse_source(text)
    assert not [d for d in diags if d.is_error], ([(d.code, d.message) for d in diags], text)
    return module


WIDE_EXAMPLE = '''segment s = city in （“北京”， ‘上海’， "广州“”"） and gender ＝ "f"   # 注释：保持（原样）
campaign c “标题” {
  who segment s
  when daily at 10：00， 20：00
  where push template “ok.j2”
  how
    step touch： notify where
}
'''
ASCII_EXAMPLE = '''segment s = city in ("北京", "上海", "广州“”") and gender = "f"   # 注释：保持（原样）
campaign c "标题" {
  who segment s
  when daily at 10:00, 20:00
  where push template "ok.j2"
  how
    step touch: notify where
}
'''


def test_a_full_width_file_parses_as_its_ascii_form_with_the_same_spans():
    wide, ascii_ = _parse(WIDE_EXAMPLE), _parse(ASCII_EXAMPLE)
    assert same_tree(wide, ascii_)
    assert wide == ascii_  # one character for one: spans are equal too
    assert [s.value for s in _strings(wide)] == ["北京", "上海", "广州“”", "f", "ok.j2"]
    assert wide.comments[0].text == "# 注释：保持（原样）"  # comments stay as written


def test_the_formatter_writes_ascii():
    text = format_module(_parse(WIDE_EXAMPLE))
    assert text == format_module(_parse(ASCII_EXAMPLE))
    assert not any(ch in _STRING_OR_COMMENT.sub("", text) for ch in "：，（）＝“”‘’")
    assert '"广州“”"' in text and "# 注释：保持（原样）" in text


def test_mapping_keeps_length_and_ascii_text():
    assert ascii_punctuation("a：b") == "a:b"
    assert ascii_punctuation('x = "a：b"') == 'x = "a：b"'
    assert ascii_punctuation("x = “a：b”") == 'x = "a：b"'
    assert ascii_punctuation("x = ‘a“b’") == 'x = "a“b"'
    assert ascii_punctuation('x = "a\\"：" ，') == 'x = "a\\"：" ,'
    assert ascii_punctuation("x = “a\n，") == 'x = "a\n,'  # an unclosed string stops at the line's end
    assert ascii_punctuation("１２：３０") == "１２:３０"  # digits stay as written: ASCII only is the rule


def test_full_width_digits_are_still_refused():
    _, diags, _ = parse_source("segment s = count(orders) >= ５\n")
    assert [d.code for d in diags] and diags[0].is_error


def test_an_error_after_full_width_punctuation_points_at_the_right_column():
    text = "segment s = city in （“北京”， @）\n"
    _, diags, _ = parse_source(text)
    assert [(d.code, d.span.line, d.span.column, d.span.start) for d in diags] == [
        ("E105", 1, text.index("@") + 1, text.index("@"))]


def test_bundled_campaigns_typed_with_an_input_method_parse_the_same():
    for path in sorted(CAMPAIGNS.glob("*.camp")):
        text = path.read_text(encoding="utf-8")
        assert _parse(widen(text)) == _parse(text), path.name


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.module, st.integers(1, 3))
def test_any_module_typed_with_full_width_punctuation_parses_the_same(module, every):
    text = format_module(module)
    assert _parse(widen(text, every)) == _parse(text), widen(text, every)


_content = st.text(st.one_of(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                             st.sampled_from(list("：，（）“”‘’＂\"\\#＝、\u3000\n"))), max_size=20)


@settings(max_examples=500, deadline=None)
@given(_content)
def test_a_string_literal_keeps_its_content(content):
    """Whatever the string holds (full-width punctuation, curly quotes, `#`, escapes) and whatever is
    typed around it, the value read is the value written."""
    literal = format_module(A.Module(decls=[A.SegmentDecl(name=A.Ident(name="s"), expr=A.Compare(
        op="=", left=A.Name(parts=["city"]), right=A.StringLit(value=content)))])).split(" = ", 2)[2].strip()
    for text in (f"segment s = city = {literal}\n", f"segment s ＝ city in （“a”， {literal}）\n"):
        module = _parse(text)
        values = [v.value for v in _strings(module)]
        assert values[-1] == content, (text, values)
    if not any(q in content for q in _QUOTES + "\\") and not any(unicodedata.category(c) == "Cc" for c in content):
        module = _parse(f"segment s = city = “{content}”\n")
        assert [v.value for v in _strings(module)] == [content]


def _strings(module: A.Module) -> list[A.StringLit]:
    return sorted((n for n in walk(module) if isinstance(n, A.StringLit)), key=lambda s: s.span.start)
