"""Ranks and percentiles (issue 14): the reference evaluator's definitions equal the engines' own PERCENT_RANK,
NTILE and percentile_cont, and camp's compiled SQL gives those values on DuckDB and PostgreSQL, including the
edges: ties, a population of one, an empty population, users left out."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import ir as I
from compiler import types as T
from compiler.sql import AudienceSQL
from runtime.warehouse import connect, create_tables
from tests.compiler.test_sql_differential import PROGRAM, SCHEMA, _engine_users, _load, user_attr
from tests.conftest import require_postgres
from tests.profiles import examples
from tests.reference import Data, Reference

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CNY = T.money("CNY")
BALANCE = user_attr("balance")


@pytest.fixture(scope="module")
def duck():
    wh = connect("duckdb:///:memory:")
    create_tables(wh, SCHEMA)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def pg():
    wh = require_postgres()
    schema = f"camp_ranks_{os.getpid()}"
    wh.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    wh.execute(f'SET search_path TO "{schema}"')
    create_tables(wh, SCHEMA)
    yield wh
    wh.execute(f'DROP SCHEMA "{schema}" CASCADE')
    wh.close()


def stat(func: str, param: Decimal | None = None, among: I.Expr | None = None) -> I.PopStat:
    t = T.PERCENT if func == "percent_rank" else T.NUMBER if func == "ntile" else CNY
    return I.PopStat(func, BALANCE, among, param, t)


def _users(balances: list[Decimal | None]) -> Data:
    return Data(users=[{"user_id": i, "balance": b} for i, b in enumerate(balances, start=1)])


def _values(wh, data: Data, e: I.Expr) -> dict:
    """Each user's value of e, as camp's SQL computes it (a rank's comparison form is tested elsewhere)."""
    _load(wh, data)
    c = AudienceSQL(PROGRAM, AS_OF, wh.dialect)
    return dict(wh.rows(c.sql(c.values([("x", e)]), pretty=False)))


balances = st.lists(st.none() | st.sampled_from([Decimal("0"), Decimal("1.5"), Decimal("2"), Decimal("10.25"),
                                                 Decimal("99.99")]), min_size=0, max_size=9)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])
@given(balances, st.integers(1, 5), st.sampled_from([Decimal("0.1"), Decimal("0.25"), Decimal("0.5"),
                                                     Decimal("0.8"), Decimal("1")]))
def test_reference_and_sql_equal_the_engines_own_functions(duck, pg, values, buckets, fraction):
    """The engines' PERCENT_RANK, NTILE (ties by user id as text) and percentile_cont over the users with a
    balance are the oracle; the reference and camp's SQL (which spells them out) must give the same."""
    data = _users(values)
    ref = Reference(PROGRAM, data, AS_OF)
    native = (f"SELECT user_id, PERCENT_RANK() OVER (ORDER BY balance), NTILE({buckets}) OVER (ORDER BY balance, "
              "CAST(user_id AS TEXT){collate}) FROM users WHERE balance IS NOT NULL")
    for wh in (duck, pg):
        _load(wh, data)
        rows = {u: (Decimal(str(pr)), n) for u, pr, n in
                wh.rows(native.format(collate=' COLLATE "C"' if wh.dialect == "postgres" else ""))}
        # DuckDB's percentile_cont of a DECIMAL rounds to the column's decimals (1.025 -> 1.02); PostgreSQL's and
        # camp's are exact: DuckDB's is asked of the values as DOUBLE
        cont = wh.rows(f"SELECT percentile_cont({fraction}) WITHIN GROUP (ORDER BY CAST(balance AS DOUBLE "
                       "PRECISION)) FROM users")[0][0]
        pr_sql = _values(wh, data, stat("percent_rank"))
        nt_sql = _values(wh, data, stat("ntile", Decimal(buckets)))
        pct_sql = _values(wh, data, stat("percentile", fraction))
        for u in data.users:
            uid = u["user_id"]
            want_pr, want_nt = rows.get(uid, (None, None))
            got_pr = ref.value(stat("percent_rank"), u)
            assert (got_pr is None) == (want_pr is None), (wh.dialect, uid)
            if want_pr is not None:
                assert abs(got_pr - want_pr) < Decimal("1e-9") and abs(pr_sql[uid] - want_pr) < Decimal("1e-9")
            else:
                assert pr_sql[uid] is None
            assert ref.value(stat("ntile", Decimal(buckets)), u) == nt_sql[uid] == want_nt, (wh.dialect, uid)
            got_pct = ref.value(stat("percentile", fraction), u)
            if cont is None:
                assert got_pct is None and pct_sql[uid] is None
            else:
                assert abs(got_pct - Decimal(str(cont))) < Decimal("1e-9"), (wh.dialect, got_pct, cont)
                assert pct_sql[uid] == got_pct, (wh.dialect, pct_sql[uid], got_pct)  # exact, as the reference


@pytest.mark.parametrize(("balances", "cond", "expected"), [
    # a population of one: its percent_rank is 0 (SQL's PERCENT_RANK), so `>= 0%` holds and `> 0%` does not
    ([Decimal(5), None], I.Cmp(">=", stat("percent_rank"), I.Const(Decimal(0), T.PERCENT)), {1}),
    ([Decimal(5), None], I.Cmp(">", stat("percent_rank"), I.Const(Decimal(0), T.PERCENT)), set()),
    # users left out (no balance) have no rank: a comparison is false, its negation true
    ([Decimal(5), None], I.Not(I.Cmp("<", stat("percent_rank"), I.Const(Decimal(1), T.PERCENT))), {2}),
    # ties share a rank: 1, 1, 3 of 4 -> 0, 0, 2/3, 1
    ([Decimal(1), Decimal(1), Decimal(2), Decimal(3)],
     I.Cmp("=", stat("percent_rank"), I.Const(Decimal(0), T.PERCENT)), {1, 2}),
    ([Decimal(1), Decimal(1), Decimal(2), Decimal(3)],
     I.Cmp(">=", stat("percent_rank"), I.Const(Decimal("0.66"), T.PERCENT)), {3, 4}),
    # NTILE(3) of 7: sizes 3, 2, 2; ties split by user id as text ("10" before "2")
    ([Decimal(0)] * 7, I.Cmp("=", stat("ntile", Decimal(3)), I.Const(Decimal(1), T.NUMBER)), {1, 2, 3}),
    ([Decimal(0)] * 10, I.Cmp("=", stat("ntile", Decimal(5)), I.Const(Decimal(1), T.NUMBER)), {1, 10}),
    # more buckets than members: one member each, the higher buckets empty
    ([Decimal(3), Decimal(1)], I.Cmp("=", stat("ntile", Decimal(5)), I.Const(Decimal(2), T.NUMBER)), {1}),
    # percentile_cont interpolates: 80% of (10, 20, 30, 40) is 34
    ([Decimal(10), Decimal(20), Decimal(30), Decimal(40)],
     I.Cmp("=", stat("percentile", Decimal("0.8")), I.Const(Decimal(34), CNY)), {1, 2, 3, 4}),
    # an empty population (among no one) has no percentile: every comparison with it is false
    ([Decimal(10), Decimal(20)], I.Cmp("<=", BALANCE, stat("percentile", Decimal("0.5"), among=I.Cmp(
        ">", BALANCE, I.Const(Decimal(100), CNY)))), set()),
    # among: the population is the users the condition holds for, whatever the audience's other filters
    ([Decimal(10), Decimal(20), Decimal(30)], I.And((I.Cmp("<", BALANCE, I.Const(Decimal(25), CNY)), I.Cmp(
        "=", stat("percent_rank", among=I.Cmp(">", BALANCE, I.Const(Decimal(15), CNY))),
        I.Const(Decimal(0), T.PERCENT)))), {2}),
])
def test_edges(duck, pg, balances, cond, expected):
    data = _users(balances)
    assert Reference(PROGRAM, data, AS_OF).users_where(cond) == expected
    for wh in (duck, pg):
        _load(wh, data)
        assert _engine_users(wh, cond, AS_OF) == expected, wh.dialect


def test_a_population_is_every_user_not_a_journeys_cohort(duck, pg):
    """A follow-up step's cohort is two of four users; their ranks are still among all four."""
    data = _users([Decimal(1), Decimal(2), Decimal(3), Decimal(4)])
    cond = I.Cmp(">=", stat("percent_rank"), I.Const(Decimal("0.5"), T.PERCENT))
    for wh in (duck, pg):
        _load(wh, data)
        wh.execute("CREATE TEMP TABLE IF NOT EXISTS camp_cohort (user_id text)")
        wh.execute("DELETE FROM camp_cohort")
        wh.insert("camp_cohort", ["user_id"], [("1",), ("4",)])
        c = AudienceSQL(PROGRAM, AS_OF, wh.dialect, cohort=True)
        assert {r[0] for r in wh.rows(c.sql(c.condition(cond), pretty=False))} == {4}, wh.dialect


# ---------------------------------------------------------------- the checker: codes, positions, hints
MISTAKES = [
    ("segment s = percent_rank(city) >= 50%\n", "E305", (1, 26), "ranks numbers, money, dates or times"),
    ("segment s = birthday >= percentile(50%, birthday)\n", "E305", (1, 41), "rank times instead"),
    ("segment s = ntile(0, count(orders)) = 1\n", "E430", (1, 19), "from 1 to 10,000"),
    ("segment s = ntile(10001, count(orders)) = 1\n", "E430", (1, 19), "from 1 to 10,000"),
    ("segment s = ntile(5%, count(orders)) = 1\n", "E430", (1, 19), "whole number"),
    ("segment s = percentile(101%, balance) <= balance\n", "E431", (1, 24), "at most 100%"),
    ("segment s = percentile(0.8, balance) <= balance\n", "E431", (1, 24), "written as one"),
    ("segment s = percent_rank(balance among city) >= 50%\n", "E306", (1, 40), "yes/no condition"),
    ("segment s = any(orders where percent_rank(amount) >= 50%)\n", "E416", (1, 30), "about the user"),
    ("segment s = percent_rank(balance) >= 50 CNY\n", "E301", (1, 13), "cannot compare"),
]


@pytest.mark.parametrize(("text", "code", "at", "words"), MISTAKES, ids=[m[0].strip() for m in MISTAKES])
def test_mistakes_are_located_with_a_code(tmp_path, text, code, at, words):
    import shutil
    from pathlib import Path

    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    ws = tmp_path / "ws"
    shutil.copytree(Path(__file__).resolve().parents[1] / "codes" / "base", ws)
    (ws / "example.camp").write_text(text, encoding="utf-8")
    diags = [d for d in check_workspace(load_workspace(ws)).diagnostics if d.file.endswith("example.camp")]
    assert [d.code for d in diags] == [code], [(d.code, d.message) for d in diags]
    d = diags[0]
    assert (d.span.line, d.span.column) == at, d
    assert words in d.message + " ".join(d.hints), (d.message, d.hints)
