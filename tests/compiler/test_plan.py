"""Step plans: golden JSON per bundled campaign, a hash that follows the content, occurrences of schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from compiler.check import check_workspace
from compiler.plan import PlanError, StepPlan
from compiler.program import Schedule
from compiler.schedule import occurrence_of, schedule_plan
from compiler.step_plan import build_plan
from compiler.workspace import load_workspace
from tests.conftest import CAMPAIGNS
from tests.test_golden import GOLDEN, _compare

SH = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2026, 12, 1, 10, 5, tzinfo=SH)


@pytest.fixture(scope="module")
def bundled():
    ws = load_workspace(CAMPAIGNS)
    return ws, check_workspace(ws).program


def _plan(bundled, name, **kw):
    ws, program = bundled
    return build_plan(program, program.campaigns[name], kw.pop("as_of", AS_OF), "duckdb", ws.template_dir,
                      workspace="demo-shop", **kw)


@pytest.mark.parametrize("name", ["winback_high_value", "silent_recall", "birthday_gift", "engagement_digest",
                                  "first_order_activation", "share_red_packet", "multi_tag_coupon",
                                  "beijing_loyal_feedback", "important_value_thanks"])
def test_golden_plan(bundled, name, update_golden):
    plan = _plan(bundled, name)
    text = json.dumps(plan.model_dump(mode="json"), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    _compare(GOLDEN / "plan" / f"{name}.json", text, update_golden)
    again = StepPlan.model_validate_json(plan.model_dump_json())
    assert again == plan and again.hash == plan.hash  # JSON round trip keeps the plan and its hash


def test_the_hash_follows_the_content(bundled, tmp_path):
    a, b = _plan(bundled, "winback_high_value"), _plan(bundled, "winback_high_value")
    assert a.hash == b.hash and len(a.hash) == 64
    changed = a.model_copy(deep=True)
    changed.arms[0].notify[0].template_source += " "
    assert changed.hash != a.hash
    later = _plan(bundled, "winback_high_value", as_of=datetime(2026, 12, 2, 10, 5, tzinfo=SH))
    assert later.occurrence == "2026-12-02T02:00Z" and later.hash != a.hash


def test_unknown_steps_and_follow_ups_without_occurrence_are_refused(bundled):
    with pytest.raises(PlanError, match="follows `touch`"):
        _plan(bundled, "winback_high_value", step="reminder")
    with pytest.raises(PlanError, match="steps: touch, reminder"):
        _plan(bundled, "winback_high_value", step="nope")


@pytest.mark.parametrize("name,step", [("winback_high_value", "reminder"), ("silent_recall", "follow_up"),
                                       ("first_order_activation", "nudge")])
def test_golden_follow_up_plan(bundled, name, step, update_golden):
    """A follow-up: the cohort's SQL (goal since the first step, `unless`, excludes as skip reasons;
    branches over `since`), the previous step and the delay; the first step names it as next."""
    plan = _plan(bundled, name, step=step, occurrence="2026-12-01T02:00Z",
                 as_of=datetime(2026, 12, 8, 10, 0, tzinfo=SH))
    text = json.dumps(plan.model_dump(mode="json"), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    _compare(GOLDEN / "plan" / f"{name}.{step}.json", text, update_golden)
    assert plan.occurrence == "2026-12-01T02:00Z" and plan.journey.previous == _plan(bundled, name).step
    assert _plan(bundled, name).next.step == step
    assert '"camp_cohort"' in plan.recipients_sql and '"skip"' in plan.recipients_sql


def test_goal_counts_since_the_journey_began(bundled):
    from compiler import ir as I
    from compiler.journey import since_entry

    c = bundled[1].campaigns["winback_high_value"]
    goal = since_entry(c.goal, "touch")
    wins = [n for n in I.walk(goal) if isinstance(n, I.Win)]
    assert wins == [I.Win("since", step="touch")]
    windowed = I.Agg("count", "orders", None, None, I.Win("within", I.Dur(7, "d")), c.goal.type)
    assert since_entry(windowed, "touch") == windowed  # a window of its own stays


def _s(**kw) -> Schedule:
    return Schedule(**{"tz": "Asia/Shanghai", **kw})


@pytest.mark.parametrize(("schedule", "as_of", "expected"), [
    (_s(kind="daily", times=["10:00"]), datetime(2026, 12, 1, 10, 0, tzinfo=SH), datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),
    (_s(kind="daily", times=["10:00"]), datetime(2026, 12, 1, 9, 59, 59, tzinfo=SH),
     datetime(2026, 11, 30, 2, 0, tzinfo=UTC)),
    (_s(kind="daily", times=["08:30", "19:00"]), datetime(2026, 12, 1, 20, 0, tzinfo=SH),
     datetime(2026, 12, 1, 11, 0, tzinfo=UTC)),
    (_s(kind="weekly", days=["monday", "thursday"], times=["11:00"]), datetime(2026, 12, 2, 9, 0, tzinfo=SH),
     datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),  # Wednesday -> Monday's
    (_s(kind="cron", cron="0 10 * * 1-5"), datetime(2026, 12, 6, 12, 0, tzinfo=SH),
     datetime(2026, 12, 4, 2, 0, tzinfo=UTC)),  # Sunday -> Friday's
    (_s(kind="once", at=datetime(2026, 11, 11, 0, 0, tzinfo=SH)), datetime(2026, 11, 12, 0, 0, tzinfo=SH),
     datetime(2026, 11, 10, 16, 0, tzinfo=UTC)),
    (_s(kind="once", at=datetime(2026, 11, 11, 0, 0, tzinfo=SH)), datetime(2026, 11, 10, 23, 0, 30, tzinfo=SH),
     datetime(2026, 11, 10, 15, 0, tzinfo=UTC)),  # before the instant: a manual run, its own minute
    (_s(kind="daily", times=["10:00"], start=datetime(2026, 12, 5).date()), datetime(2026, 12, 1, 11, 0, tzinfo=SH),
     datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),  # before the range: its own minute
    (_s(kind="event", event="orders"), datetime(2026, 12, 1, 11, 7, 42, tzinfo=SH),
     datetime(2026, 12, 1, 3, 7, tzinfo=UTC)),
])
def test_the_occurrence_is_the_latest_fire_time(schedule, as_of, expected):
    assert occurrence_of(schedule_plan(schedule), as_of) == expected
