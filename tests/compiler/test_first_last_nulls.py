"""first/last of an event field keep missing values last in every dialect camp compiles for. BigQuery's aggregate
ORDER BY cannot say NULLS LAST (its ascending order puts NULLs first): sqlglot dropped the clause with a warning, and
a tie at the latest time between a brand and a missing one picked the missing one there alone. The SQL compiled
for each dialect is read back by sqlglot as that dialect and written for DuckDB (sqlglot keeps each dialect's NULL
order explicit), then run on the rows of a tie; it must give what the reference evaluator and the DuckDB SQL give,
with no sqlglot warning on the way. Snowflake's ARRAY_AGG leaves NULL values out (sqlglot reads it back as DuckDB's
with `FILTER (WHERE v IS NOT NULL)`): there each value is aggregated as a one-element array, never NULL, so a latest
order without a brand is not skipped for an earlier brand."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import sqlglot

from compiler import ir as I
from compiler import types as T
from compiler.sql import AudienceSQL
from runtime.warehouse import connect, create_tables
from tests.compiler.test_sql_differential import PROGRAMS, SCHEMA, _load
from tests.reference import Data, Reference

AS_OF = datetime(2024, 2, 29, 16, 30, tzinfo=UTC)
DAY = [datetime(2024, 2, d, 9, 0, tzinfo=UTC) for d in range(1, 29)]
ORDERS = [(1, DAY[2], "B"), (1, DAY[4], "A"), (1, DAY[0], "C"),
          (2, DAY[4], "Z"), (2, DAY[4], None), (2, DAY[4], "M"), (2, DAY[0], None), (2, DAY[0], "A"),  # ties, NULLs
          (3, DAY[4], None), (3, DAY[0], "K")]  # the latest has no brand: last is NULL
WANT = {"last": {1: "A", 2: "M", 3: None}, "first": {1: "C", 2: "A", 3: "K"}}


@pytest.fixture(scope="module")
def duck():
    wh = connect("duckdb:///:memory:")
    create_tables(wh, SCHEMA)
    rows = [{"user_id": u, "created_at": t, "amount": None, "brand": b, "category": None, "shop": "a",
             "coupon_used": None} for u, t, b in ORDERS]
    users = [{"user_id": u, "name": None, "city": None, "gender": None, "birthday": None, "registered_at": None,
              "member_level": None, "balance": None, "timezone": None, "phone": None, "email": None}
             for u in range(1, 5)]
    data = Data(users=users, events={"orders": rows, "visits": []})
    _load(wh, data)
    yield wh, data
    wh.close()


CASES = [(d, f) for d in ["duckdb", "bigquery", "snowflake", "postgres", "trino"] for f in ["first", "last"]]


@pytest.mark.parametrize(("dialect", "func"), CASES)
def test_first_and_last_keep_missing_values_last(duck, dialect, func, caplog):
    wh, data = duck
    program = PROGRAMS["America/New_York"]
    brand = I.EventField(event="orders", field="brand", column="brand", type=T.TEXT)
    agg = I.Agg(func=func, event="orders", field=brand, where=None, window=None, type=T.TEXT)
    compiler = AudienceSQL(program, AS_OF, dialect, manual_tags=True)
    for value in ["A", "B", "C", "K", "M", "Z"]:
        cond = I.Cmp(op="=", left=agg, right=I.Const(value, T.TEXT))
        with caplog.at_level(logging.WARNING, logger="sqlglot"):
            sql = compiler.sql(compiler.condition(cond), pretty=False)
        assert not caplog.records, [r.getMessage() for r in caplog.records]
        on_duckdb = sql if dialect == "duckdb" else sqlglot.transpile(sql, read=dialect, write="duckdb")[0]
        if dialect == "snowflake":  # read back with Snowflake's ARRAY_AGG, which leaves NULL values out
            assert "FILTER(WHERE" in on_duckdb.replace(" (", "("), on_duckdb
        got = {int(r[0]) for r in wh.rows(on_duckdb)}
        assert got == {u for u, v in WANT[func].items() if v == value}, (value, on_duckdb)
        assert got == Reference(program, data, AS_OF).users_where(cond), value
