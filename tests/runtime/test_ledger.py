"""Ledger migrations are applied by camp, once, in order, on DuckDB and PostgreSQL; the database itself
refuses a second row for one idempotency key and an unknown status."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

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
    monkeypatch.setattr(ledger_module, "MIGRATIONS", MIGRATIONS)
    lg = open_ledger(ledger_url)
    assert lg.version() == 2
    assert lg.rows("SELECT idempotency_key, status FROM camp_deliveries") == [("c/s/o/1", "sent")]
    lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", skipped)
    with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
        lg.execute(f"INSERT INTO camp_deliveries VALUES ({marks})", ROW)
    assert lg.one("SELECT count(*) FROM camp_snapshot_parts") == 0
    lg.close()
