"""A three-step journey run with `camp run` (real processes, a real Prefect server): each follow-up
reaches the users the step before it was sent to, once its delay has passed, re-checking at fire time
the campaign's goal (counted since the journey began), `unless` and `exclude`; branches read `since`.

Every user's fate is written down below from the data, and compared with the ledger row by row.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from runtime.ledger import open_ledger
from runtime.warehouse import connect, create_tables
from tests.conftest import PG_URL, require_postgres
from tests.runtime.conftest import camp, make_workspace

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 12, 1, 10, 0, tzinfo=SH)  # the touch
LONDON_OPEN = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)  # quiet hours over in London

JOURNEY = """
campaign journey "三步旅程" {
  why retention
    goal count(orders) >= 2 within 14d
  who member_level = "normal"
    exclude tagged "complained"
  what coupon J20 { value 20 CNY  usable 7d after issue }
  when daily at 10:00 tz "Asia/Shanghai"
  how
    step touch: give what, notify push template "j/touch.j2"
    step reminder after 3d unless any(visits since touch):
      notify push template "j/reminder.j2"
    step last after 2d:
      if any(orders since reminder): notify push template "j/thanks.j2"
      otherwise: notify push template "j/last.j2"
  how much
    quiet 22:00-08:00
}
"""
TEMPLATES = {"j/touch.j2": "{{ coupon.value | money }} for you", "j/reminder.j2": "{{ coupon.code }} ends {{ "
             "coupon.expires_at | date }}", "j/thanks.j2": "thanks {{ user.id }}", "j/last.j2": "last call"}

# user -> (what happens to them, their events relative to the touch)
S = timedelta(seconds=1)
D = timedelta(days=1)
USERS = {
    1: ("nothing happens: reminder, then the last call", [], []),
    2: ("visits after the touch: skipped by unless", [], [T + D]),
    3: ("orders after the reminder: reminder, then thanks", [T + 4 * D], []),
    4: ("orders twice: goal reached, leaves the journey", [T + D, T + 2 * D], []),
    5: ("tagged complained after the touch: excluded", [], []),
    6: ("ordered before the touch and once since: the goal counts since the touch only", [T - D, T + D], []),
    7: ("visits exactly at the touch: that is since the touch", [], [T]),
    8: ("visits a second before the touch: not since", [], [T - S]),
    9: ("lives in London: the touch waits for 08:00 there, so does the rest", [], []),
}
EXPECTED_REMINDER = {1: ("sent", None), 2: ("skipped", "unless"), 3: ("sent", None), 4: ("skipped", "goal reached"),
                     5: ("skipped", "excluded"), 6: ("sent", None), 7: ("skipped", "unless"), 8: ("sent", None)}
EXPECTED_LAST = {1: "otherwise", 3: "branch1", 6: "otherwise", 8: "otherwise"}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def ws(request, tmp_path_factory):
    """The workspace, its warehouse and its ledger: DuckDB files, or both in a fresh PostgreSQL schema
    (the cohort then goes through COPY into a TEMP table of the PostgreSQL session)."""
    root = make_workspace(tmp_path_factory.mktemp("journey"), {"journey.camp": JOURNEY}, templates=TEMPLATES)
    schema = None
    toml = (root / "camp.toml").read_text().replace('name = "test"', f'name = "journey-{request.param}"')
    (root / "camp.toml").write_text(toml)  # its own deployments on the session's server
    if request.param == "postgres":
        admin = require_postgres()
        schema = f"camp_journey_{os.getpid()}"
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        toml = (root / "camp.toml").read_text().replace("duckdb:///shop.duckdb", url).replace(
            "duckdb:///ledger.duckdb", url)
        (root / "camp.toml").write_text(toml)
    shop = Shop(root, url if schema else None)
    program = check_workspace(load_workspace(root)).program
    wh = connect(_data_url(shop))
    create_tables(wh, program.schema)
    wh.insert("users", ["user_id", "member_level", "timezone"],
              [(u, "normal", "Europe/London" if u == 9 else "Asia/Shanghai") for u in USERS])
    wh.insert("consent", ["user_id", "channel"], [(u, "push") for u in USERS])
    wh.insert("orders", ["user_id", "created_at", "amount"], [(u, t, 50) for u, (_, o, _) in USERS.items() for t in o])
    wh.insert("visits", ["user_id", "visited_at", "source"], [(u, t, "app") for u, (_, _, v) in USERS.items() for t in v])
    wh.close()
    yield shop
    if schema:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


class Shop(NamedTuple):
    root: Path
    url: str | None  # PostgreSQL (warehouse and ledger); None: DuckDB files in root


def _data_url(ws: Shop) -> str:
    return ws.url or f"duckdb:///{ws.root / 'shop.duckdb'}"


def _rows(ws, sql: str, params=()) -> list[tuple]:
    """Rows of the ledger (made, as a first run would, when no test of the module has run before on this worker)."""
    lg = open_ledger(ws.url or f"duckdb:///{ws.root / 'ledger.duckdb'}")
    try:
        return [tuple(r) for r in lg.rows(sql, params)]
    finally:
        lg.close()


def _step(ws, step: str) -> dict[int, tuple]:
    return {int(u): (s, r, a) for u, s, r, a in _rows(
        ws, "SELECT user_id, status, reason, arm FROM camp_deliveries WHERE step = ?", (step,))}


def _run(ws, env, *args):
    r = camp("run", "journey.camp", "--no-progress", *args, cwd=ws.root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


def test_a_journey_step_by_step(ws, prefect_env):
    touch = _run(ws, prefect_env, "--as-of", T.isoformat())
    assert "next            reminder (journey 2026-12-01T02:00Z) at 2026-12-04 10:00 Asia/Shanghai" in touch
    assert {u: s for u, (s, _, _) in _step(ws, "touch").items()} == {**{u: "sent" for u in range(1, 9)}, 9: "deferred"}
    london = _run(ws, prefect_env, "--as-of", LONDON_OPEN.isoformat())  # a later run releases the London touch
    assert "1 released after quiet hours" in london
    assert "reminder (journey 2026-12-01T02:00Z) at 2026-12-04 16:00 Asia/Shanghai" in london  # 08:00 London

    wh = connect(_data_url(ws))  # the complaint arrives after the touch
    wh.insert("user_tags", ["user_id", "tag"], [(5, "complained")])
    wh.close()
    early = _run(ws, prefect_env, "--step", "reminder", "--as-of", (T + 3 * D - timedelta(minutes=1)).isoformat())
    assert "no one is due" in early and _step(ws, "reminder") == {}

    dry = _run(ws, prefect_env, "--step", "reminder", "--as-of", (T + 3 * D).isoformat(), "--dry-run")
    assert "skipped" in dry and _step(ws, "reminder") == {}
    _run(ws, prefect_env, "--step", "reminder", "--as-of", (T + 3 * D).isoformat())
    assert {u: (s, r) for u, (s, r, _) in _step(ws, "reminder").items()} == EXPECTED_REMINDER
    again = _run(ws, prefect_env, "--step", "reminder", "--as-of", (T + 3 * D + timedelta(hours=1)).isoformat())
    assert "no one is due" in again  # London is not due yet; nobody twice

    _run(ws, prefect_env, "--step", "reminder", "--as-of", "2026-12-04T08:00:00+00:00")  # London's own 3 days
    assert _step(ws, "reminder")[9] == ("sent", None, "all")
    parts = _rows(ws, "SELECT lo, hi FROM camp_snapshot_parts WHERE step = 'reminder' ORDER BY lo")
    assert parts == [(0, 8), (8, 9)]  # two runs, two parts, each user once

    deployed = camp("deploy", ".", "--yes", cwd=ws.root, env=prefect_env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    template = ws.root / "templates" / "j" / "last.j2"
    template.write_text("last call!")  # a changed step, with users waiting for it
    plan = camp("deploy", ".", cwd=ws.root, env=prefect_env)
    assert "steps changed or removed: last; users mid-way on them: 5" in plan.stdout, plan.stdout + plan.stderr
    template.write_text(TEMPLATES["j/last.j2"])

    _run(ws, prefect_env, "--step", "last", "--as-of", (T + 5 * D).isoformat())
    last = _step(ws, "last")
    assert {u: a for u, (s, _, a) in last.items()} == EXPECTED_LAST
    assert all(s == "sent" for s, _, _ in last.values())

    bodies = dict(_rows(ws, "SELECT user_id, body FROM camp_outbox WHERE step = 'reminder'"))
    expires = (T + 7 * D).date().isoformat()
    assert bodies["1"] == f"J20 ends {expires}"  # the touch's coupon, as the reminder speaks of it
    assert dict(_rows(ws, "SELECT user_id, body FROM camp_outbox WHERE step = 'last'"))["3"] == "thanks 3"
    keys = _rows(ws, "SELECT count(*), count(DISTINCT idempotency_key) FROM camp_deliveries")
    assert keys[0][0] == keys[0][1] == 9 + 9 + 4
    _the_ledger_and_summary_show_skips(ws, prefect_env)


def _the_ledger_and_summary_show_skips(ws, prefect_env):
    """Part of the test above, which makes the runs it reads (as a test of its own, pytest-xdist could give it
    to a worker first: CI once saw it read an empty ledger)."""
    rows = json.loads(camp("ledger", "--json", "--status", "skipped", cwd=ws.root, env=prefect_env).stdout)
    assert sorted((r["user_id"], r["reason"]) for r in rows) == [
        ("2", "unless"), ("4", "goal reached"), ("5", "excluded"), ("7", "unless")]
    runs = json.loads(camp("runs", "--json", cwd=ws.root, env=prefect_env).stdout)
    reminder = next(r for r in runs if r["step"] == "reminder" and r["summary"]["this_run"].get("skipped"))
    assert reminder["summary"]["reasons"]["skipped: unless"] == 2


def test_a_follow_up_whose_step_was_removed_since_it_was_scheduled_ends_quietly(ws, prefect_api):
    """A scheduled run of a step (or campaign) that a later edit removed logs why and sends nothing."""
    from runtime.flows import run_campaign

    before = _rows(ws, "SELECT count(*) FROM camp_deliveries")
    for campaign, step in (("journey", "gone"), ("gone", "reminder")):
        assert run_campaign(str(ws.root), campaign, step=step, as_of=(T + 9 * D).isoformat(),
                            occurrence="2026-12-01T02:00Z") is None
    assert _rows(ws, "SELECT count(*) FROM camp_deliveries") == before
