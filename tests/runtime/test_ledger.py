"""Ledger migrations are applied by camp, once, in order, on DuckDB and PostgreSQL; the database itself
refuses a second row for one idempotency key and an unknown status."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.ledger import open_ledger
from runtime.migrations import MIGRATIONS
from tests.conftest import PG_URL, require_postgres

ROW = ("c/s/o/1", "c", "s", "o", "1", "all", "push", "sent", None, 0, "CNY", None, None, "h", "r", None,
       datetime(2026, 1, 1, tzinfo=UTC), None, datetime(2026, 1, 1, tzinfo=UTC), None, 0, None)


@pytest.fixture(params=["duckdb", "postgres"])
def ledger_url(request, tmp_path):
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ledger.duckdb'}"
        return
    pg = require_postgres()
    schema = f"camp_ledger_test_{os.getpid()}"
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.close()


def test_migrations_apply_once_and_the_database_guards_idempotency(ledger_url):
    url = ledger_url
    lg = open_ledger(url)
    assert lg.version() == MIGRATIONS[-1][0]
    assert lg.migrate() == []  # nothing left to apply
    marks = lg.ph(len(ROW))
    lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", ROW)
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", ROW)
    bad = ("c/s/o/2", *ROW[1:7], "maybe", *ROW[8:])
    with pytest.raises(Exception, match="(?i)check|constraint"):
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", bad)
    applied = lg.rows("SELECT version, name FROM camp_migrations ORDER BY version")
    assert [v for v, _ in applied] == [m[0] for m in MIGRATIONS]
    lg.close()
    again = open_ledger(url)
    assert again.migrate() == []
    again.close()


def test_a_version_1_ledger_keeps_its_rows_through_migration_2(ledger_url, monkeypatch):
    """A ledger made before journeys: its deliveries survive the table rebuild (DuckDB) or the new CHECK
    (PostgreSQL), the key stays unique, and `skipped` becomes a status."""
    import runtime.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:1])
    old = open_ledger(ledger_url)
    marks = old.ph(len(ROW))
    old.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", ROW)
    skipped = ("c/s/o/2", *ROW[1:7], "skipped", "unless", *ROW[9:])
    with pytest.raises(Exception, match="(?i)check|constraint"):
        old.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", skipped)
    old.close()
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:2])
    lg = open_ledger(ledger_url)
    assert lg.version() == 2
    assert lg.rows("SELECT idempotency_key, status FROM camp_deliveries") == [("c/s/o/1", "sent")]
    lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", skipped)
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", ROW)
    assert lg.one("SELECT count(*) FROM camp_snapshot_parts") == 0
    lg.close()


def test_the_check_constraints_come_from_the_enums_and_keep_their_released_text():
    """Migrations 1 and 2 were applied by existing ledgers: their SQL must read as it did when released,
    and the latest one must allow every Status member (a new member needs a new migration)."""
    import re

    from runtime.ledger import CouponState, Status

    v1 = "('pending','dispatching','deferred','sent','failed','holdout','suppressed','budget_exhausted')"
    deliveries_1 = MIGRATIONS[0][2][4][1]
    assert f"status text NOT NULL CHECK (status IN {v1})" in deliveries_1
    assert "state text NOT NULL CHECK (state IN ('reserved', 'issued', 'redeemed', 'void'))" in MIGRATIONS[0][2][7][1]
    v2 = v1[:-1] + ",'skipped')"
    assert MIGRATIONS[1][2][1][1] == ("ALTER TABLE camp_deliveries ADD CONSTRAINT camp_deliveries_status_check "
                                      f"CHECK (status IN {v2})")
    latest = [sql for _, _, statements in MIGRATIONS for _, sql in statements if "CHECK (status IN" in sql][-1]
    allowed = set(re.findall(r"'(\w+)'", latest.split("CHECK (status IN", 1)[1]))
    assert allowed == {s.value for s in Status}
    coupons = [sql for _, _, statements in MIGRATIONS for _, sql in statements if "CHECK (state IN" in sql
               and "camp_coupons" in sql][-1]
    assert set(re.findall(r"'(\w+)'", coupons.split("CHECK (state IN", 1)[1])) == {s.value for s in CouponState}
    assert {s.value for s in CouponState} == {"reserved", "issued", "redeemed", "void", "expired"}


def test_a_version_2_ledger_keeps_its_coupons_through_migration_3(ledger_url, monkeypatch):
    """A ledger made before `camp sync`: its coupons survive the table rebuild (DuckDB) or the new columns and
    CHECK (PostgreSQL), gain empty redemption columns, and `expired` becomes a state."""
    import runtime.ledger as ledger_module
    from runtime.ledger.store import COUPON_COLS

    at = datetime(2026, 1, 1, tzinfo=UTC)
    coupon = ("cp1", "c/s/o/1", "c", "NEW20", "1", 20, "CNY", None, "{}", "issued", at, at, at, at, None)
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:2])
    old = open_ledger(ledger_url)
    old.bulk_insert("camp_coupons", COUPON_COLS, [coupon])
    with pytest.raises(Exception, match="(?i)check|constraint"):
        old.execute("UPDATE camp_coupons SET state = 'expired'")
    old.close()
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:3])
    lg = open_ledger(ledger_url)
    assert lg.version() == 3
    assert lg.rows("SELECT coupon_id, state, redeemed_order_at, order_amount, discount, redemption, expired_at "
                   "FROM camp_coupons") == [("cp1", "issued", None, None, None, None, None)]
    lg.execute("UPDATE camp_coupons SET state = 'expired', expired_at = ?", (at,))
    with pytest.raises(Exception, match="(?i)check|constraint"):
        lg.execute("UPDATE camp_coupons SET state = 'lost'")
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.bulk_insert("camp_coupons", COUPON_COLS, [coupon])
    lg.close()


def test_a_version_3_ledger_gains_points_and_red_packets_through_migration_4(ledger_url, monkeypatch):
    """A ledger made before points and red packets: migration 4 adds their tables, with the states the enums
    allow and nothing else, and keeps what the ledger held."""
    import runtime.ledger as ledger_module
    from runtime.ledger.resources import POINTS_COLS, SHARE_COLS
    from runtime.ledger.status import PointsState, ShareState

    at = datetime(2026, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:3])
    old = open_ledger(ledger_url)
    old.add_spend("c", at.date(), Decimal("1.50"))
    old.close()
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:4])
    lg = open_ledger(ledger_url)
    assert lg.version() == 4
    assert lg.spend("c") == {at.date(): Decimal("1.50")}
    credit = ("c/s/o/1", "c", "s", "o", "1", 200, Decimal("2"), "CNY", "outbox", "issued", at, at, "outbox:x", None)
    lg.bulk_insert("camp_points", POINTS_COLS, [credit])
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.bulk_insert("camp_points", POINTS_COLS, [credit])  # one credit per delivery
    with pytest.raises(Exception, match="(?i)check|constraint"):
        lg.execute("UPDATE camp_points SET state = 'lost'")
    share = ("e1", None, None, None, "1", 0, Decimal(0), None, "refused", "no red packet granted", Decimal(0), at, at)
    lg.bulk_insert("camp_red_packet_shares", SHARE_COLS, [share])
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.bulk_insert("camp_red_packet_shares", SHARE_COLS, [share])  # one row per share event
    with pytest.raises(Exception, match="(?i)check|constraint"):
        lg.execute("UPDATE camp_red_packet_shares SET state = 'pending'")
    lg.close()
    for members, table in ((PointsState, "camp_points"), (ShareState, "camp_red_packet_shares")):
        sql = next(sql for _, _, st in MIGRATIONS for _, sql in st if f"CREATE TABLE {table} " in sql)
        assert set(re.findall(r"'(\w+)'", sql.split("CHECK (state IN", 1)[1])) == {m.value for m in members}


def test_a_version_4_ledger_gains_sync_watermarks_through_migration_5(ledger_url, monkeypatch):
    """Migration 5 adds `camp_sync_marks` and keeps what the ledger held; a watermark never moves back."""
    import runtime.ledger as ledger_module

    at = datetime(2026, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS[:4])
    old = open_ledger(ledger_url)
    old.add_spend("c", at.date(), Decimal("1.50"))
    old.close()
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS)
    lg = open_ledger(ledger_url)
    assert lg.version() == MIGRATIONS[-1][0]  # 5 and every later one
    assert lg.spend("c") == {at.date(): Decimal("1.50")}
    assert lg.watermark("shares:shares") is None
    lg.advance_watermark("shares:shares", at, at)
    lg.advance_watermark("shares:shares", at.replace(day=2), at)
    lg.advance_watermark("shares:shares", at, at)  # an earlier one: stays
    lg.advance_watermark("shares:other", at, at)
    assert lg.watermark("shares:shares") == at.replace(day=2) and lg.watermark("shares:other") == at
    lg.close()


def test_migration_6_keeps_one_alert_evaluation_per_occurrence_in_the_states_the_enum_allows(ledger_url):
    from runtime.ledger.alerts import ALERT_COLS, AlertRow
    from runtime.ledger.status import AlertState

    at = datetime(2026, 1, 1, tzinfo=UTC)
    lg = open_ledger(ledger_url)
    row = AlertRow("a", "2026-01-01T01:00:00+00:00", at, 5, 100, "count", ">=", Decimal(3), "ops", "console", "[]",
                   "s", "b", AlertState.PENDING.value, None, None, None, 0)
    assert lg.record_alert(row)
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.bulk_insert("camp_alerts", ALERT_COLS, [tuple(row)])
    with pytest.raises(Exception, match="(?i)check|constraint"):
        lg.execute("UPDATE camp_alerts SET state = 'lost'")
    lg.alert_sent("a", row.occurrence, at, "id-1")
    assert not lg.record_alert(row._replace(matched=9))  # sent: the occurrence is over
    [kept] = lg.alert_history("a")
    assert (kept.state, kept.matched, kept.attempts, kept.provider_id) == ("sent", 5, 1, "id-1")
    lg.close()
    sql = next(sql for _, _, st in MIGRATIONS for _, sql in st if "CREATE TABLE camp_alerts " in sql)
    assert set(re.findall(r"'(\w+)'", sql.split("CHECK (state IN", 1)[1])) == {m.value for m in AlertState}


def test_a_duckdb_ledger_puts_checkpoints_off_and_a_killed_writers_log_is_replayed(tmp_path):
    """A ledger session checkpoints at 1 GB of log, not DuckDB's 16 MB; what a process killed before any checkpoint
    committed is in the ledger when it is next opened (tests/runtime/test_crash.py kills real runs)."""
    import subprocess
    import sys

    url = f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    lg = open_ledger(url)
    try:
        assert lg.one("SELECT current_setting('checkpoint_threshold')") == "953.6 MiB"
    finally:
        lg.close()
    script = ("import os; from runtime.ledger import open_ledger; from datetime import date; "
              f"lg = open_ledger({url!r}); "
              "[lg.add_spend('c', date(2026, 12, d), 1) for d in range(1, 29)]; os.kill(os.getpid(), 9)")
    done = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True, timeout=120)
    assert done.returncode == -9
    assert (tmp_path / "ledger.duckdb.wal").exists()  # nothing was checkpointed
    lg = open_ledger(url)
    try:
        assert lg.one("SELECT count(*) FROM camp_spend") == 28
    finally:
        lg.close()


def test_a_batch_of_mostly_free_decisions_keeps_each_cost_exactly(ledger_url):
    """A batch of 10,000 decided rows, nearly all suppressed at cost 0 and three sent at 0.01, far apart: DuckDB typed
    the costs from a sample of the rows (DECIMAL(1,0)) and stored the 0.01s as 0. Each cost is kept exactly."""
    lg = open_ledger(ledger_url)
    try:
        rows = [(f"c/s/o/{i}", "c", "s", "o", str(i), "all", "push", "suppressed", "cap", Decimal(0), *ROW[10:])
                for i in range(10_000)]
        for i in (2312, 5443, 7253):
            rows[i] = (*rows[i][:7], "sent", None, Decimal("0.01"), *ROW[10:])
        with lg.transaction():
            lg.record_decisions(rows, [], [])
        got = lg.rows("SELECT user_id, cost FROM camp_deliveries WHERE cost <> 0 ORDER BY user_id")
        assert [(u, Decimal(c)) for u, c in got] == [("2312", Decimal("0.01")), ("5443", Decimal("0.01")),
                                                     ("7253", Decimal("0.01"))]
    finally:
        lg.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.decimals(min_value=0, max_value=10**13, places=4, allow_nan=False), min_size=1,
                        max_size=40),
       at=st.lists(st.integers(0, 2_999), min_size=1, max_size=40), zero_first=st.booleans())
def test_any_amounts_anywhere_in_a_batch_are_stored_exactly(tmp_path_factory, amounts, at, zero_first):
    """Amounts of any size and up to 4 places (a DECIMAL(18, 4) column), anywhere among 3,000 rows of 0 (or of
    amounts at ints), on a DuckDB ledger: each is stored as given, none rounded or refused."""
    lg = open_ledger(f"duckdb:///{tmp_path_factory.mktemp('bulk') / 'ledger.duckdb'}")
    try:
        filler = Decimal(0) if zero_first else 0
        costs = [filler] * 3_000
        for i, a in zip(at, amounts, strict=False):
            costs[i] = a
        rows = [(f"c/s/o/{i}", "c", "s", "o", str(i), "all", "push", "sent", None, cost, *ROW[10:])
                for i, cost in enumerate(costs)]
        with lg.transaction():
            lg.record_decisions(rows, [], [])
        got = {u: Decimal(c) for u, c in lg.rows("SELECT user_id, cost FROM camp_deliveries")}
        assert got == {str(i): Decimal(c) for i, c in enumerate(costs)}
    finally:
        lg.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.one_of(st.decimals(min_value=0, max_value=10**13, places=4, allow_nan=False),
                                  st.integers(0, 10**6), st.sampled_from([Decimal("1E+2"), Decimal("0E-7")])),
                        min_size=1, max_size=24),
       reasons=st.lists(st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",),
                                                                       blacklist_characters="\x00"), max_size=8)),
                        min_size=24, max_size=24),
       hours=st.lists(st.integers(-36, 36), min_size=24, max_size=24))
def test_a_few_rows_bound_as_values_are_stored_as_a_frame_stores_them(tmp_path_factory, amounts, reasons, hours):
    """Up to FEW rows go to DuckDB as one INSERT with parameters, more as a frame: either way each amount (any
    size, up to 4 places, ints and exponent forms), text (or NULL) and instant (any offset) is stored as given."""
    from datetime import timedelta, timezone

    from runtime.ledger.backend import FEW

    lg = open_ledger(f"duckdb:///{tmp_path_factory.mktemp('few') / 'ledger.duckdb'}")
    try:
        rows = [(f"c/s/o/{i}", "c", "s", "o", str(i), "all", "push", "suppressed", reasons[i], cost, "CNY", None,
                 None, "h", "r", None, datetime(2026, 3, 29, 1, tzinfo=timezone(timedelta(hours=hours[i] / 4))),
                 None, datetime(2026, 1, 1, tzinfo=UTC), None, 0, None) for i, cost in enumerate(amounts)]
        for part in (rows[:FEW], rows[FEW:]):  # the first part bound as values; the rest a frame when over FEW
            with lg.transaction():
                lg.record_decisions(part, [], [])
        got = {u: (Decimal(c), r, t) for u, c, r, t in lg.rows("SELECT user_id, cost, reason, due_at FROM "
                                                                  "camp_deliveries")}
        assert got == {str(i): (Decimal(row[9]), row[8], row[16]) for i, row in enumerate(rows)}
    finally:
        lg.close()


def test_amounts_go_to_duckdb_as_fixed_point_text():
    from runtime.ledger.backend import _plain

    assert [_plain(v) for v in (Decimal("1E+2"), Decimal("0.0100"), 1e-07, 3)] == ["100", "0.0100", "0.0000001", "3"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                              max_size=8), max_size=30, unique=True), one_text=st.booleans())
def test_a_snapshot_written_column_by_column_holds_each_recipient_once_in_order(ledger_url, users, one_text):
    """add_recipients takes the snapshot column by column (DuckDB: a frame; PostgreSQL: rows zipped for COPY):
    the rows are the ones written one by one would be, seq from 0 on, on both engines; a second part goes on
    from where the first ended, also after a first part of no users."""
    lg = open_ledger(ledger_url)
    try:
        lg.execute("DELETE FROM camp_recipients")
        lg.execute("DELETE FROM camp_snapshots")
        held = [i % 3 == 0 for i in range(len(users))]
        data = "" if one_text else [f'{{"n": {i}, "名": "{u}"}}' for i, u in enumerate(users)]
        with lg.decision():
            lg.add_recipients(("c", "s", "o"), "h", 0, users, held, data, None)
            lg.add_recipients(("c", "s", "o"), "h", len(users), ["extra"], [True], "{}", None)
        got = lg.rows("SELECT seq, user_id, held_out, data FROM camp_recipients ORDER BY seq")
        size = lg.snapshot_size(("c", "s", "o"))
    finally:
        lg.close()
    want = [(i, u, held[i], data if one_text else data[i]) for i, u in enumerate(users)]
    assert [tuple(r) for r in got] == want + [(len(users), "extra", True, "{}")]
    assert size == len(users) + 1
