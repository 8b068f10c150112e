"""The campaign plan: what `camp deploy` fingerprints. No time goes into it: step plans at two as-of times
differ, the campaign plan does not. It follows what the campaign does (audience, the segments it reads,
templates, caps, budget, schedule) and ignores layout (camp fmt) and comments."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from camp.commands import run_fmt
from compiler.campaign_plan import campaign_plan
from compiler.check import check_workspace
from compiler.plan import CampaignPlan
from compiler.step_plan import build_plan
from compiler.workspace import load_workspace
from tests.conftest import CAMPAIGNS

SH = ZoneInfo("Asia/Shanghai")
WINBACK = "winback_high_value"


def _plans(root: Path) -> dict[str, CampaignPlan]:
    ws = load_workspace(root)
    program = check_workspace(ws).program
    assert program is not None
    return {name: campaign_plan(program, c, "duckdb", ws.template_dir, "demo-shop")
            for name, c in program.campaigns.items()}


@pytest.fixture(scope="module")
def bundled() -> dict[str, CampaignPlan]:
    return _plans(CAMPAIGNS)


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(CAMPAIGNS, tmp_path / "ws")
    return tmp_path / "ws"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_campaign_plan_takes_no_time(bundled):
    """Two step plans a day and a season apart differ (occurrence, SQL); the campaign plan built between and
    after them is the same, and holds no occurrence or as-of time."""
    ws = load_workspace(CAMPAIGNS)
    program = check_workspace(ws).program
    assert program is not None
    c = program.campaigns[WINBACK]
    first = build_plan(program, c, datetime(2026, 12, 1, 10, 5, tzinfo=SH), "duckdb", ws.template_dir,
                       workspace="demo-shop")
    between = campaign_plan(program, c, "duckdb", ws.template_dir, "demo-shop")
    later = build_plan(program, c, datetime(2027, 3, 15, 18, 30, tzinfo=SH), "duckdb", ws.template_dir,
                       workspace="demo-shop")
    after = campaign_plan(program, c, "duckdb", ws.template_dir, "demo-shop")
    assert first.hash != later.hash and first.recipients_sql != later.recipients_sql
    assert between.hash == after.hash == bundled[WINBACK].hash and len(after.hash) == 64
    text = after.model_dump_json()
    assert "as_of" not in text and "occurrence" not in text
    assert "2026-12-01T02:00" not in text and "2027-03-15" not in text
    assert CampaignPlan.model_validate_json(text).hash == after.hash  # JSON round trip keeps the hash


def test_step_plans_take_their_parts_from_the_campaign_plan(bundled):
    ws = load_workspace(CAMPAIGNS)
    program = check_workspace(ws).program
    assert program is not None
    cplan = bundled[WINBACK]
    touch = build_plan(program, program.campaigns[WINBACK], datetime(2026, 12, 1, 10, 5, tzinfo=SH), "duckdb",
                       ws.template_dir, workspace="demo-shop")
    assert touch.arms == cplan.steps[0].arms and touch.resources == cplan.resources
    assert touch.next == cplan.steps[0].next and touch.schedule == cplan.schedule
    assert [cap for cap in cplan.caps if cap.unit in ("message", "coupon", "push", "sms")] == touch.caps
    assert any(cap.unit == "email" for cap in cplan.caps)  # a cap on a channel the step does not use is left out


@pytest.mark.parametrize(("file", "old", "new"), [
    ("winback.camp", "count(orders within 365d) >= 10", "count(orders within 365d) >= 11"),  # audience
    ("winback.camp", 'exclude tagged "complained"', 'exclude tagged "refunded"'),  # audience: exclude
    ("winback.camp", "holdout 10%", "holdout 20%"),
    ("winback.camp", "cap 2 messages per user per 7d", "cap 3 messages per user per 7d"),
    ("winback.camp", "budget 50000 CNY total", "budget 60000 CNY total"),
    ("winback.camp", "daily at 10:00", "daily at 11:00"),  # schedule
    ("winback.camp", "to 2026-12-31", "to 2027-01-15"),  # schedule: its dates
    ("winback.camp", "step reminder after 3d", "step reminder after 4d"),
    ("winback.camp", "unless any(orders since touch)", "unless any(orders within 30d)"),
    ("winback/reminder.j2", "", "!"),  # a step's template text
    ("policy.camp", "", ""),  # the policy file as it was: nothing changes (control)
])
def test_the_hash_follows_what_the_campaign_does(bundled, ws, file, old, new):
    path = ws / file if file.endswith(".camp") else ws / "templates" / file
    if old:
        _edit(path, old, new)
    else:
        path.write_text(path.read_text(encoding="utf-8") + new, encoding="utf-8")
    changed = _plans(ws)[WINBACK]
    assert (changed.hash != bundled[WINBACK].hash) == (old != new)


def test_a_template_changes_only_its_steps_hash(bundled, ws):
    reminder = ws / "templates" / "winback" / "reminder.j2"
    reminder.write_text(reminder.read_text(encoding="utf-8") + " ", encoding="utf-8")
    before, after = bundled[WINBACK], _plans(ws)[WINBACK]
    assert after.step_hash("touch") == before.step_hash("touch")
    assert after.step_hash("reminder") != before.step_hash("reminder")


def test_a_segment_changes_the_campaigns_that_read_it(bundled, ws):
    """important_value_thanks reads `important_value` = sticky and recent_buyer; winback reads none of them."""
    _edit(ws / "segments.camp", "count(orders within 365d) >= 10", "count(orders within 365d) >= 12")
    after = _plans(ws)
    assert after["important_value_thanks"].hash != bundled["important_value_thanks"].hash
    assert after[WINBACK].hash == bundled[WINBACK].hash


def test_layout_and_comments_change_nothing(bundled, ws):
    """Spaces, blank lines and comments move every position after them; `camp fmt` puts the layout back.
    Neither changes any campaign's plan."""
    path = ws / "winback.camp"
    _edit(path, "  who lifecycle = churned\n", "\n\n  # who: churned, big spenders\n  who   lifecycle  =  churned\n")
    _edit(path, "    cap 2 messages", "    # not more than two a week\n    cap  2  messages")
    _edit(path, "  how\n", "  how   # the journey\n")
    commented = _plans(ws)
    assert {n: p.hash for n, p in commented.items()} == {n: p.hash for n, p in bundled.items()}
    assert run_fmt((ws,), check_only=False) == 0
    assert "who lifecycle = churned" in path.read_text(encoding="utf-8")  # fmt did rewrite the layout
    formatted = _plans(ws)
    assert {n: p.hash for n, p in formatted.items()} == {n: p.hash for n, p in bundled.items()}


def test_the_canonical_form_leaves_positions_out_and_refuses_what_it_cannot_write():
    """IR nodes may carry spans as fields with compare=False (or Span values): they are not part of the plan;
    an object with no canonical form is refused rather than written as its repr."""
    from dataclasses import dataclass, field

    from compiler.campaign_plan import _canonical
    from dsl.span import Span

    @dataclass(frozen=True)
    class Node:
        op: str
        where: Span = field(default_factory=Span.unknown, compare=False, repr=False)

    assert _canonical(Node("=", Span.point(3, 7))) == _canonical(Node("=")) == {"node": "Node", "op": "="}
    assert _canonical((Node("<"), Span.point(1, 1))) == [{"node": "Node", "op": "<"}]
    with pytest.raises(TypeError, match="no canonical form"):
        _canonical(object())


def test_history_conditions_put_the_classification_in_the_plan_when_they_read_it_live(ws):
    """`moved C from X to Y` reads C's live label (its rules change the plan's hash); `C was X 90d ago` reads only
    the history, so C's rules do not; both conditions themselves are in the audience's IR."""
    assert "materialize lifecycle, value_quadrant daily at 02:00" in (ws / "alerts.camp").read_text(encoding="utf-8")
    (ws / "slip.camp").write_text(
        'campaign moved_c {\n  who moved value_quadrant from hf_lv to lf_lv within 30d\n  when daily at 10:00\n'
        '  where push template "winback/push.j2"\n  how\n    step touch: notify where\n}\n'
        'campaign was_c {\n  who lifecycle was mature 90d ago\n  when daily at 10:00\n'
        '  where push template "winback/push.j2"\n  how\n    step touch: notify where\n}\n', encoding="utf-8")
    (ws / "templates" / "winback" / "push.j2").write_text("{{ user.name }}", encoding="utf-8")
    before = _plans(ws)
    _edit(ws / "segments.camp", "hf_lv = count(orders within 90d) >= 5", "hf_lv = count(orders within 90d) >= 6")
    _edit(ws / "segments.camp", "mature    = count(orders within 30d) >= 5", "mature    = count(orders within 30d) >= 6")
    after = _plans(ws)
    assert after["moved_c"].hash != before["moved_c"].hash
    assert after["was_c"].hash == before["was_c"].hash
    _edit(ws / "slip.camp", "lifecycle was mature 90d ago", "lifecycle was mature 60d ago")
    assert _plans(ws)["was_c"].hash != after["was_c"].hash
