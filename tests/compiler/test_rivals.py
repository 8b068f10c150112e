"""Rivals of a deployed campaign at a slot (compiler/rivals.py): who shares users with it, fires then,
and ranks ahead of it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from compiler.check import check_workspace
from compiler.rivals import Rival, rivals
from compiler.workspace import load_workspace
from tests.runtime.conftest import make_workspace

SH = ZoneInfo("Asia/Shanghai")
SLOT = datetime(2026, 12, 3, 10, 0, tzinfo=SH)  # 02:00 UTC
OCC = "2026-12-03T02:00Z"
DAILY = 'daily at 10:00 tz "Asia/Shanghai"'
COUPON = '  what coupon C{n} "c" {{\n    value 5 CNY\n    usable 7d after issue\n  }}\n'


def campaign(name: str, priority: int = 0, when: str = DAILY, group: str | None = None, channel: str = "push",
             coupon: bool = False) -> str:
    how = "give what, notify where" if coupon else "notify where"
    return (f"campaign {name} {{\n  who member_level = \"gold\"\n" + (COUPON.format(n=name) if coupon else "")
            + f"  when {when}\n  where {channel} template \"t.j2\"\n  how\n    step first: {how}\n"
            + f"  how much\n    priority {priority}\n" + (f"    exclusive \"{group}\"\n" if group else "") + "}\n")


def program(tmp_path, *campaigns: str, policy: str = ""):
    files = {f"c{i}.camp": text for i, text in enumerate(campaigns)}
    root = make_workspace(tmp_path / "ws", files, templates={"t.j2": "hi"},
                          policy="policy {\n  exclusive group \"g\"\n  exclusive group \"h\"\n" + policy + "}\n")
    result = check_workspace(load_workspace(root))
    assert not result.errors, [d.message for d in result.errors]
    return result.program


def names(rs: list[Rival]) -> list[str]:
    return [r.campaign for r in rs]


def test_an_exclusive_group_makes_higher_priority_campaigns_of_the_slot_rivals(tmp_path):
    p = program(tmp_path, campaign("low", 1, group="g"), campaign("high", 10, group="g"),
                campaign("mid", 5, group="g"), campaign("other_group", 50, group="h"), campaign("alone", 60))
    assert rivals(p, "low", SLOT) == [Rival("high", "first", OCC, 10, "exclusive group g"),
                                      Rival("mid", "first", OCC, 5, "exclusive group g")]
    assert names(rivals(p, "mid", SLOT)) == ["high"]
    assert rivals(p, "high", SLOT) == []  # the highest waits for no one
    assert rivals(p, "other_group", SLOT) == [] and rivals(p, "alone", SLOT) == []
    # any aware time of the same minute is the same slot; the occurrence is the plan's (UTC) string
    assert rivals(p, "low", datetime(2026, 12, 3, 2, 0, 42, tzinfo=UTC)) == rivals(p, "low", SLOT)


def test_policy_caps_shared_by_both_first_steps_make_rivals(tmp_path):
    def one(policy: str, a: dict, b: dict) -> list[str]:
        p = program(tmp_path / str(abs(hash((policy, str(a), str(b))))), campaign("low", 1, **a),
                    campaign("high", 2, **b), policy=policy)
        return [f"{r.campaign}: {r.why}" for r in rivals(p, "low", SLOT)]

    assert one("  cap 3 messages per user per 7d\n", {"channel": "sms"}, {"channel": "push"}) == [
        "high: policy cap 3 messages per 7d"]
    assert one("  cap 1 sms per user per 1d\n", {"channel": "sms"}, {"channel": "sms"}) == [
        "high: policy cap 1 sms per 1d"]
    assert one("  cap 1 sms per user per 1d\n", {"channel": "sms"}, {"channel": "push"}) == []  # not both on sms
    assert one("  cap 2 coupons per user per 30d\n", {"coupon": True}, {"coupon": True}) == [
        "high: policy cap 2 coupons per 30d"]
    assert one("  cap 2 coupons per user per 30d\n", {"coupon": True}, {}) == []  # high gives no coupon
    assert one("  cap 3 unused coupons per user\n", {"coupon": True}, {"coupon": True}) == [
        "high: policy cap 3 unused coupons"]
    assert one("", {}, {}) == []  # no policy cap, no group: they do not compete


def test_only_campaigns_due_exactly_at_the_slot_are_rivals(tmp_path):
    p = program(tmp_path, campaign("low", 1, group="g"),
                campaign("at_ten_thirty", 9, 'daily at 10:30 tz "Asia/Shanghai"', group="g"),
                campaign("at_ten_utc", 8, 'daily at 02:00 tz "UTC"', group="g"),  # the same instant
                campaign("hourly", 7, "every 1h", group="g"),
                campaign("cron_ten", 6, 'cron "0 10 * * *" tz "Asia/Shanghai"', group="g"),
                campaign("once_then", 5, 'once at 2026-12-03 10:00 tz "Asia/Shanghai"', group="g"),
                campaign("once_other_day", 4, 'once at 2026-12-04 10:00 tz "Asia/Shanghai"', group="g"),
                campaign("weekly_thu", 3, 'every thursday at 10:00 tz "Asia/Shanghai"', group="g"),  # 3 Dec 2026
                campaign("weekly_fri", 2, 'every friday at 10:00 tz "Asia/Shanghai"', group="g"))
    assert names(rivals(p, "low", SLOT)) == ["at_ten_utc", "hourly", "cron_ten", "once_then", "weekly_thu"]
    # pure: the caller passes the slot of its own run; at 10:30 only the 10:30 campaign fires
    assert names(rivals(p, "low", datetime(2026, 12, 3, 10, 30, tzinfo=SH))) == ["at_ten_thirty"]
    assert names(rivals(p, "low", datetime(2026, 12, 3, 10, 1, tzinfo=SH))) == []


def test_event_triggered_campaigns_neither_have_nor_are_rivals(tmp_path):
    p = program(tmp_path, campaign("low", 1, group="g"), campaign("on_order", 10, "on orders first", group="g"),
                campaign("on_order_low", 0, "on orders delay 30m", group="g"))
    assert rivals(p, "low", SLOT) == []
    assert rivals(p, "on_order_low", SLOT) == []  # an event run is for one user at the event's time: no slot


def test_equal_priority_is_broken_by_name_order(tmp_path):
    p = program(tmp_path, campaign("beta", 5, group="g"), campaign("alpha", 5, group="g"),
                campaign("gamma", 5, group="g"))
    assert names(rivals(p, "gamma", SLOT)) == ["alpha", "beta"]
    assert names(rivals(p, "beta", SLOT)) == ["alpha"]
    assert rivals(p, "alpha", SLOT) == []


def test_a_rival_outside_its_dates_is_not_due(tmp_path):
    p = program(tmp_path, campaign("low", 1, group="g"),
                campaign("ended", 9, 'daily at 10:00 from 2026-11-01 to 2026-12-02 tz "Asia/Shanghai"', group="g"),
                campaign("starts", 8, 'daily at 10:00 from 2026-12-03 to 2026-12-31 tz "Asia/Shanghai"', group="g"),
                campaign("later", 7, 'daily at 10:00 from 2026-12-04 tz "Asia/Shanghai"', group="g"))
    assert names(rivals(p, "low", SLOT)) == ["starts"]
    assert names(rivals(p, "low", datetime(2026, 12, 2, 10, 0, tzinfo=SH))) == ["ended"]
    assert names(rivals(p, "low", datetime(2026, 12, 5, 10, 0, tzinfo=SH))) == ["starts", "later"]


def test_the_arbitration_window_is_a_validated_setting(tmp_path):
    from compiler.config import load_config

    def load(text: str):
        path = tmp_path / "camp.toml"
        path.write_text(text, encoding="utf-8")
        return load_config(path, "camp.toml")

    config, diags, _ = load("[workspace]\nname = \"x\"\n")
    assert not diags and config.runtime.arbitration_seconds == 600  # 10 minutes by default
    config, diags, _ = load("[runtime]\narbitration_wait = \"90s\"\n")
    assert not diags and config.runtime.arbitration_seconds == 90
    assert load("[runtime]\narbitration_wait = \"0s\"\n")[0].runtime.arbitration_seconds == 0
    for bad in ('"10"', '"ten minutes"', '"25h"', '"-5m"'):
        _, diags, _ = load(f"[runtime]\narbitration_wait = {bad}\n")
        assert [d.code for d in diags] == ["E002"] and "arbitration_wait" in diags[0].message, bad
        assert diags[0].span.line == 2 and '"10m"' in diags[0].hints[0]
    _, diags, _ = load("[runtime]\narbitration_wiat = \"1m\"\n")
    assert [d.code for d in diags] == ["E002"] and "arbitration_wait" in diags[0].hints[0]
