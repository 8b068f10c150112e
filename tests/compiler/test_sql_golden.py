"""Golden SQL per campaign and dialect (refresh: pytest --update-golden), each parsed back in its dialect."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot

from compiler.check import check_workspace
from compiler.sql import DIALECTS, AudienceSQL
from compiler.workspace import load_workspace
from tests.conftest import CAMPAIGNS
from tests.test_golden import GOLDEN, _compare

PROGRAM = check_workspace(load_workspace(Path(CAMPAIGNS))).program
AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(PROGRAM.campaigns))
def test_golden_sql(name, dialect, update_golden):
    compiler = AudienceSQL(PROGRAM, AS_OF, dialect)
    sql = compiler.sql(compiler.final(PROGRAM.campaigns[name]))
    assert sqlglot.parse_one(sql, read=dialect) is not None
    assert "now()" not in sql.lower() and "current_" not in sql.lower()
    _compare(GOLDEN / "sql" / f"{name}.{dialect}.sql", sql + "\n", update_golden)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_golden_population_sql(dialect, update_golden):
    """Ranks, buckets and a percentile (the bundled RFM segments): each population a CTE of its own."""
    from compiler import ir as I

    compiler = AudienceSQL(PROGRAM, AS_OF, dialect)
    cond = I.And((I.InSegment("rfm_champions"), I.InSegment("top_spenders"), I.InSegment("above_median_spend")))
    sql = compiler.sql(compiler.condition(cond))
    assert sqlglot.parse_one(sql, read=dialect) is not None
    _compare(GOLDEN / "sql" / f"population.{dialect}.sql", sql + "\n", update_golden)


def test_one_pass_per_event_table():
    compiler = AudienceSQL(PROGRAM, AS_OF, "duckdb")
    sql = compiler.sql(compiler.final(PROGRAM.campaigns["silent_recall"]), pretty=False)
    assert sql.count('FROM "orders"') == 1 and sql.count('FROM "visits"') <= 1
    assert "EXISTS" not in sql.upper()  # no correlated subquery per condition
