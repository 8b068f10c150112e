"""The mistakes marketers make get a hint (E420) or no false alarm (W105 on windows that cannot overlap)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from dsl.diagnostics import Diagnostic

BASE = Path(__file__).resolve().parents[1] / "codes" / "base"


def check(tmp_path: Path, text: str) -> list[Diagnostic]:
    ws_dir = tmp_path / "ws"
    shutil.copytree(BASE, ws_dir)
    (ws_dir / "example.camp").write_text(text, encoding="utf-8")
    ws = load_workspace(ws_dir)
    assert not isinstance(ws, Diagnostic)
    return check_workspace(ws).diagnostics


# ---------------------------------------------------------------- E420: `x = a or b`
OR_OF_VALUES = [
    ("segment s = lifecycle = silent or churned\n", "`lifecycle in (silent, churned)`", (1, 13, 1, 42)),
    ("segment s = lifecycle = silent or churned or new\n", "`lifecycle in (silent, churned, new)`",
     (1, 13, 1, 49)),
    ('segment s = city = "北京" or "上海"\n', '`city in ("北京", "上海")`', (1, 13, 1, 32)),
    ('segment s = member_level = "gold" or silver\n', '`member_level in ("gold", "silver")`',
     (1, 13, 1, 44)),
    ('segment s = any(orders where brand = "a" or "b")\n', '`brand in ("a", "b")`', (1, 30, 1, 48)),
    ("segment s = count(orders) = 1 or 2\n", "`count(orders) in (1, 2)`", (1, 13, 1, 35)),
    ('segment s = gender = "f" and (lifecycle = new or silent)\n', "`lifecycle in (new, silent)`",
     (1, 31, 1, 56)),
]


@pytest.mark.parametrize(("text", "hint", "where"), OR_OF_VALUES)
def test_a_value_joined_with_or_suggests_in(tmp_path, text, hint, where):
    diags = check(tmp_path, text)
    assert [d.code for d in diags] == ["E420"], [(d.code, d.message) for d in diags]
    d = diags[0]
    assert list(d.hints) == [hint]
    assert (d.span.line, d.span.column, d.span.end_line, d.span.end_column) == where


@pytest.mark.parametrize(("text", "hint", "where"), OR_OF_VALUES)
def test_the_hint_put_in_place_checks_clean(tmp_path, text, hint, where):
    d = check(tmp_path, text)[0]
    fixed = text[:d.span.start] + hint.strip("`") + text[d.span.end:]
    assert check(tmp_path / "fixed", fixed) == [], fixed


def test_or_between_real_conditions_is_left_alone(tmp_path):
    text = ("segment sticky2 = count(orders within 365d) >= 10\n"
            "segment a = lifecycle = silent or sticky2\n"
            'segment b = city = "北京" or member_level = "gold"\n')
    assert check(tmp_path, text) == []


def test_the_other_items_are_still_checked(tmp_path):
    diags = check(tmp_path, 'segment s = lifecycle = silentt or churned or nope = 1\n')
    assert [(d.code, d.span.column) for d in diags] == [("E420", 13), ("E204", 25), ("E204", 47)]


def test_an_unknown_name_after_or_is_still_e204(tmp_path):
    diags = check(tmp_path, "segment s = lifecycle = silent or dormant\n")
    assert [d.code for d in diags] == ["E204"]


# ---------------------------------------------------------------- W105: windows that cannot overlap
def _pair(who_a: str, who_b: str) -> str:
    out = []
    for name, who in (("a", who_a), ("b", who_b)):
        out.append(f'campaign {name} {{\n  who {who}\n  when daily at 10:00\n  where push template "ok.j2"\n'
                   f'  how\n    step touch: notify where\n  how much\n    exclusive "coupon_push"\n}}\n')
    return "\n".join(out)


DISJOINT = [
    ("none(orders within 30d)", "first(orders.time) within 30d"),
    ("first(orders.time) within 30d", "none(orders within 30d)"),
    ("none(orders within 30d)", "last(orders.time) within 7d"),
    ("none(orders within 30d)", "max(orders.time) within 2w"),
    ("none(orders within 30d)", "any(orders within 7d)"),
    ("count(orders within 90d) = 0", "count(orders within 30d) >= 2"),
    ("none(orders)", "first(orders.time) within 30d"),
    ('none(orders where brand = "x" within 30d)', 'first(orders.time where brand = "x") within 30d'),
    ("none(orders within 30d)", "first(orders.time within 7d) within 90d"),
]
OVERLAP = [
    ("none(orders within 30d)", "first(orders.time) within 60d"),
    ("none(orders within 7d)", "any(orders within 30d)"),
    ("none(orders within 30d)", "not (first(orders.time) within 30d)"),
    ('none(orders where brand = "x" within 30d)', "first(orders.time) within 30d"),
    ("none(visits within 30d)", "first(orders.time) within 30d"),
    ("none(orders within 1mo)", "first(orders.time) within 30d"),
    ("none(orders within 1d)", "first(orders.time) within 24h"),
]


@pytest.mark.parametrize(("a", "b"), DISJOINT)
def test_w105_is_quiet_when_windows_cannot_overlap(tmp_path, a, b):
    assert [d.code for d in check(tmp_path, _pair(a, b))] == []


@pytest.mark.parametrize(("a", "b"), OVERLAP)
def test_w105_still_warns_when_they_can(tmp_path, a, b):
    diags = check(tmp_path, _pair(a, b))
    assert [d.code for d in diags] == ["W105"]
    assert (diags[0].span.line, diags[0].span.column) == (18, 5)
