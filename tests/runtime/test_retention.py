"""The retention rule (runtime.retention): the horizon is the earliest window start of every campaign's counting caps
and exclusive hold, in wall-clock days of the workspace's zone (a week back across a daylight-saving change is
7 x 24 h +- 1 h); caps without a window become `forever` scopes; coupon and unused-coupon caps count coupons, not
deliveries; follow-ups are listed. Run with the host's TZ set to several zones (the rule must not read it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from compiler.campaign_plan import campaign_plan
from runtime.retention import archive_rule, lookback
from tests.runtime.conftest import make_workspace
from tests.runtime.steps import program_of

POLICY = '''
policy {
  cap 3 messages per user per 7d
  exclusive group "g"
}
'''

def _campaign(name: str, steps: str, how_much: str) -> str:
    return f"""
campaign {name} "{name.upper()}" {{
  who member_level in ("gold")
  what message
  when daily at 10:00 tz "America/New_York"
  where push template "t.j2"
  how
{steps}
  how much
{how_much}
}}
"""


A = _campaign("a", "    step touch: notify where\n    step nudge after 2h: notify where",
              '    cap 1 sms per user per 30d\n    cap 2 coupons per user per 90d\n    exclusive "g"')
B = _campaign("b", "    step touch: notify where", "    cap 2 messages per user")


def _plans(tmp_path, files):
    root = make_workspace(tmp_path / "ws", files, policy=POLICY, templates={"t.j2": "hi"})
    (root / "camp.toml").write_text((root / "camp.toml").read_text().replace("Asia/Shanghai", "America/New_York"))
    ws, program = program_of(root)
    return [campaign_plan(program, c, "duckdb", ws.template_dir, "test") for c in program.campaigns.values()]


def test_the_horizon_is_the_longest_window_in_wall_clock_days_of_the_zone(tmp_path):
    plans = _plans(tmp_path, {"a.camp": A, "b.camp": B})
    as_of = datetime(2026, 11, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York, four days after the clocks went back
    rule = archive_rule(plans, as_of)
    # a's sms cap (30 days) is the longest window; 30 wall-clock days back crosses the change: 30 x 24 h + 1 h
    assert rule.horizon == datetime(2026, 10, 6, 14, 0, tzinfo=UTC)
    assert as_of - rule.horizon == timedelta(days=30, hours=1)
    assert rule.forever == ((None, "b"),)  # b's cap without a window; the coupon cap counts coupons, not deliveries
    assert rule.journeys == (("a", "touch", "nudge"),)
    # b alone: the policy's 7 days (b is in no exclusive group); nothing counted without the policy's cap either
    b = [p for p in plans if p.campaign == "b"]
    assert archive_rule(b, as_of).horizon == datetime(2026, 10, 29, 14, 0, tzinfo=UTC)  # 7 days: 10:00 EDT then


def test_lookback_of_one_plan_and_no_window_at_all(tmp_path):
    plans = {p.campaign: p for p in _plans(tmp_path, {"a.camp": A, "b.camp": B})}
    at = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 10:00 in New York, two days after the clocks went forward
    a = plans["a"]
    # the exclusive hold (7 days) and the 30-day sms cap: the earliest is 30 wall-clock days back (one hour more)
    assert lookback(a.caps, None, a.timezone, at) == datetime(2026, 2, 8, 15, 0, tzinfo=UTC)
    no_caps = [c for c in a.caps if c.unit == "coupon"]
    assert lookback(no_caps, None, a.timezone, at) is None  # a coupon cap reads coupons
    rule = archive_rule([], at)
    assert rule.horizon == at and rule.forever == () and rule.journeys == ()
