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
    assert fire_time(JAN31, Duration(value=1, unit="mo")) == datetime(2026, 2, 28, 10, 1, tzinfo=UTC)
    assert fire_time(JAN31, Duration(value=3, unit="d")) == datetime(2026, 2, 3, 10, 1, tzinfo=UTC)
    assert fire_time(JAN31.replace(second=0), None) == JAN31.replace(second=0)


@pytest.mark.parametrize("after", [Duration(value=1, unit="mo"), Duration(value=28, unit="d")])
def test_due_users_once(tmp_path, after):
    lg = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    sends = {"a": JAN31, "b": datetime(2026, 2, 1, 10, 0, tzinfo=UTC), "c": datetime(2026, 1, 31, 10, 1, tzinfo=UTC)}
    for user, due in sends.items():
        row = list(ROW)
        row[0], row[1], row[2], row[3], row[4], row[16] = f"c/touch/o/{user}", "c", "touch", "o", user, due
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({lg.ph(len(row))})", row)
    plan = SimpleNamespace(campaign="c", step="reminder", occurrence="o",
                           journey=JourneyPlan(previous="touch", earlier=["touch"], after=after, since=["touch"]))
    at = datetime(2026, 2, 28, 10, 1, tzinfo=UTC)  # a's fire time either way (31 Jan 10:00:30 + 1mo or 28d)
    due = cohort(lg, plan, at)
    assert list(due["user_id"]) == ["a", "c"]  # c: 10:01 + 1mo/28d = 28 Feb 10:01, due; b: 1 March
    assert list(cohort(lg, plan, at.replace(minute=0))["user_id"]) == []
    assert due["since_touch"].iloc[0].to_pydatetime() == JAN31
    lg.execute("INSERT INTO camp_recipients VALUES ('c', 'reminder', 'o', 0, 'a', false, '{}')")
    assert list(cohort(lg, plan, at)["user_id"]) == ["c"]  # a is in an earlier part
    lg.close()
