"""Who a follow-up's run takes from the ledger: due by its as-of time (delays in calendar months
too, fire times rounded up to the minute), each user in one part only."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from compiler.plan import Duration, JourneyPlan
from runtime.journey import cohort, fire_time
from runtime.ledger import open_ledger
from tests.runtime.test_ledger import ROW

JAN31 = datetime(2026, 1, 31, 10, 0, 30, tzinfo=UTC)


def test_fire_times_are_whole_minutes_and_calendar_months():
    assert fire_time(JAN31, Duration(value=1, unit="mo"), "UTC") == datetime(2026, 2, 28, 10, 1, tzinfo=UTC)
    assert fire_time(JAN31, Duration(value=3, unit="d"), "UTC") == datetime(2026, 2, 3, 10, 1, tzinfo=UTC)
    assert fire_time(JAN31.replace(second=0), None, "UTC") == JAN31.replace(second=0)


# Saturday 7 March 2026 10:00 in New York (EST, 15:00 UTC); clocks go forward on Sunday 8 March at 02:00
NY_SAT = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def test_calendar_delays_keep_the_local_time_across_daylight_saving():
    # a day later is 10:00 local again: 14:00 UTC (EDT), not 24 hours later
    assert fire_time(NY_SAT, Duration(value=1, unit="d"), "America/New_York") == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)
    assert fire_time(NY_SAT, Duration(value=1, unit="w"), "America/New_York") == datetime(2026, 3, 14, 14, 0,
                                                                                         tzinfo=UTC)
    # hours are absolute: 24 h later is 11:00 local
    assert fire_time(NY_SAT, Duration(value=24, unit="h"), "America/New_York") == datetime(2026, 3, 8, 15, 0,
                                                                                          tzinfo=UTC)
    # London goes forward on 29 March: one month after 1 March 09:00 GMT is 1 April 09:00 BST
    assert fire_time(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), Duration(value=1, unit="mo"),
                     "Europe/London") == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def test_cohort_is_due_on_the_local_calendar(tmp_path):
    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    sends = {"sat": NY_SAT, "later": NY_SAT.replace(minute=1), "old": datetime(2026, 3, 1, 15, 0, tzinfo=UTC)}
    for user, due in sends.items():
        row = list(ROW)
        row[0], row[1], row[2], row[3], row[4], row[16] = f"c/touch/o/{user}", "c", "touch", "o", user, due
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({lg.ph(len(row))})", row)
    plan = SimpleNamespace(campaign="c", step="reminder", occurrence="o", timezone="America/New_York",
                           journey=JourneyPlan(previous="touch", earlier=["touch"], after=Duration(value=1, unit="d"),
                                               since=["touch"]))
    at = datetime(2026, 3, 8, 14, 0, tzinfo=UTC)  # Sunday 10:00 EDT: a calendar day after the Saturday send
    assert list(cohort(lg, plan, at)["user_id"]) == ["old", "sat"]
    assert list(cohort(lg, plan, at.replace(minute=0, hour=13))["user_id"]) == ["old"]
    lg.close()


@pytest.mark.parametrize("after", [Duration(value=1, unit="mo"), Duration(value=28, unit="d")])
def test_due_users_once(tmp_path, after):
    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    sends = {"a": JAN31, "b": datetime(2026, 2, 1, 10, 0, tzinfo=UTC), "c": datetime(2026, 1, 31, 10, 1, tzinfo=UTC)}
    for user, due in sends.items():
        row = list(ROW)
        row[0], row[1], row[2], row[3], row[4], row[16] = f"c/touch/o/{user}", "c", "touch", "o", user, due
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({lg.ph(len(row))})", row)
    plan = SimpleNamespace(campaign="c", step="reminder", occurrence="o", timezone="UTC",
                           journey=JourneyPlan(previous="touch", earlier=["touch"], after=after, since=["touch"]))
    at = datetime(2026, 2, 28, 10, 1, tzinfo=UTC)  # a's fire time either way (31 Jan 10:00:30 + 1mo or 28d)
    due = cohort(lg, plan, at)
    assert list(due["user_id"]) == ["a", "c"]  # c: 10:01 + 1mo/28d = 28 Feb 10:01, due; b: 1 March
    assert list(cohort(lg, plan, at.replace(minute=0))["user_id"]) == []
    assert due["since_touch"].iloc[0].to_pydatetime() == JAN31
    lg.execute("INSERT INTO camp_recipients VALUES ('c', 'reminder', 'o', 0, 'a', false, '{}')")
    assert list(cohort(lg, plan, at)["user_id"]) == ["c"]  # a is in an earlier part
    lg.close()


def test_an_empty_ledger_gives_an_empty_cohort_with_its_columns(tmp_path):
    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    plan = SimpleNamespace(campaign="c", step="reminder", occurrence="o", timezone="America/New_York",
                           journey=JourneyPlan(previous="touch", earlier=["touch"], after=Duration(value=7, unit="d"),
                                               since=["touch"]))
    due = cohort(lg, plan, NY_SAT)
    assert list(due.columns) == ["user_id", "since_touch"] and len(due) == 0
    lg.close()
