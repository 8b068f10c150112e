"""History conditions (`C was X 90d ago`, `moved C from X to Y within 30d`) give the same users in the SQL of
DuckDB and PostgreSQL as in the reference evaluator (tests/reference.py: `Reference.was`, the definition).

Generated histories are what `camp materialize` writes: per user and classification, intervals [valid_from,
valid_to) that follow each other, opened at materialisations on the workspace's day boundaries (local midnight
and 02:00 in Shanghai, London or New York, across daylight-saving changes), the last one open (valid_to NULL),
with boundaries exactly on the instants the conditions read and a second either side; users without history.
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import ir as I
from compiler.clock import fire_instant, minus
from compiler.sql import HISTORY, AudienceSQL
from runtime.warehouse import connect, create_tables
from tests.compiler.test_sql_differential import (
    AS_OFS,
    DST_AS_OFS,
    EXAMPLES,
    PROGRAM,
    PROGRAMS,
    SCHEMA,
    _load,
    datasets,
)
from tests.conftest import require_postgres
from tests.profiles import examples
from tests.reference import Data, Reference

CLASSES = {name: PROGRAM.classifications[name].labels for name in ("lifecycle", "value_quadrant")}
HISTORY_DURS = [I.Dur(1, "d"), I.Dur(7, "d"), I.Dur(30, "d"), I.Dur(90, "d"), I.Dur(1, "mo"), I.Dur(12, "h")]


@pytest.fixture(scope="module")
def duck():
    wh = connect("duckdb:///:memory:")
    create_tables(wh, SCHEMA)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def pg():
    wh = require_postgres()
    schema = f"camp_hist_{os.getpid()}"
    wh.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    wh.execute(f'SET search_path TO "{schema}"')
    create_tables(wh, SCHEMA)
    yield wh
    wh.execute(f'DROP SCHEMA "{schema}" CASCADE')
    wh.close()


def _load_history(wh, data: Data) -> None:
    wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {HISTORY} (name text, user_id text, label text, "
               "valid_from timestamptz, valid_to timestamptz)")  # as runtime.labels does
    wh.execute(f"DELETE FROM {HISTORY}")
    wh.insert(HISTORY, ["name", "user_id", "label", "valid_from", "valid_to"],
              [(n, str(u), lab, a, b) for n, u, lab, a, b in data.history])


@st.composite
def histories(draw):
    as_of, data, zone = draw(datasets())
    tz = ZoneInfo(zone)
    today = as_of.astimezone(tz).date()
    wall = draw(st.sampled_from([time(0, 0), time(2, 0)]))  # the day boundary, or a `daily at 02:00`
    # the instants the conditions read, a second either side: interval boundaries there test half-openness
    edges = [minus(as_of, d, zone) + timedelta(seconds=s) for d in HISTORY_DURS for s in (-1, 0, 1)]
    rows = []
    for u in data.users:
        for name, labels in CLASSES.items():
            if draw(st.integers(0, 4)) == 0:
                continue  # no history of this classification for this user
            days = sorted(draw(st.sets(st.integers(0, 120), min_size=1, max_size=8)), reverse=True)
            starts = {fire_instant(datetime.combine(today - timedelta(days=k), wall), tz) for k in days}
            starts |= set(draw(st.sets(st.sampled_from(edges), max_size=3)))
            starts = sorted(t for t in starts if t <= as_of + timedelta(days=draw(st.integers(0, 1))))
            current, opened = None, None
            for t in starts:
                label = draw(st.sampled_from(labels))
                if label == current:
                    continue  # a materialisation that changed nothing opens nothing
                if current is not None:
                    rows.append((name, u["user_id"], current, opened, t))
                current, opened = label, t
            if current is not None:
                closed = draw(st.none() | st.sampled_from(edges).filter(lambda e, o=opened: e > o))
                rows.append((name, u["user_id"], current, opened, closed))
    data.history = rows
    return as_of, data, zone


@st.composite
def history_conditions(draw):
    name = draw(st.sampled_from(sorted(CLASSES)))
    labels = CLASSES[name]
    dur = draw(st.sampled_from(HISTORY_DURS))
    if draw(st.booleans()):
        cond = I.LabelWas(name, draw(st.sampled_from(labels)), dur)
    else:
        cond = I.LabelMoved(name, draw(st.sampled_from(labels)), draw(st.sampled_from(labels)), dur)
    shape = draw(st.integers(0, 3))
    if shape == 1:
        return I.Not(cond)
    if shape == 2:
        other = draw(history_conditions())
        return I.Or((cond, other))
    if shape == 3:
        return I.And((cond, I.LabelIs(name, (draw(st.sampled_from(labels)),))))
    return cond


def _users(wh, program, as_of, cond) -> set:
    compiler = AudienceSQL(program, as_of, wh.dialect)
    return {r[0] for r in wh.rows(compiler.sql(compiler.condition(cond), pretty=False))}


@settings(max_examples=examples(max(EXAMPLES // 2, 50)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(histories(), history_conditions())
def test_history_equals_reference_on_duckdb_and_postgres(duck, pg, case, cond):
    as_of, data, zone = case
    expected = Reference(PROGRAMS[zone], data, as_of).users_where(cond)
    for wh in (duck, pg):
        _load(wh, data)
        _load_history(wh, data)
        assert _users(wh, PROGRAMS[zone], as_of, cond) == expected, (wh.dialect, zone)


@pytest.mark.parametrize("zone", sorted(PROGRAMS))
@pytest.mark.parametrize("as_of", AS_OFS[:2] + DST_AS_OFS[:3], ids=lambda d: d.isoformat())
def test_history_boundaries(duck, pg, zone, as_of):
    """One user per boundary: an interval that ends exactly at the instant read (not held: half-open), starts
    exactly at it (held), ends a second after it (held); `moved` over a window whose start is an interval's end
    (not held) or a second before it (held). Each case is asserted, not only compared."""
    program = PROGRAMS[zone]
    t = minus(as_of, I.Dur(30, "d"), zone)
    second = timedelta(seconds=1)
    users = [{"user_id": i} for i in range(1, 6)]
    history = [("value_quadrant", 1, "hf_lv", t - timedelta(days=5), t),  # ends at t: not `was` at t
               ("value_quadrant", 2, "hf_lv", t, None),  # starts at t: `was` at t
               ("value_quadrant", 3, "hf_lv", t - timedelta(days=5), t + second),
               ("value_quadrant", 4, "hf_lv", t - timedelta(days=5), t - second),
               ("value_quadrant", 5, "lf_lv", t, None)]
    data = Data(users=users, history=history)
    was = I.LabelWas("value_quadrant", "hf_lv", I.Dur(30, "d"))
    moved = I.LabelMoved("value_quadrant", "hf_lv", "lf_lv", I.Dur(30, "d"))  # everyone is lf_lv now (no orders)
    ref = Reference(program, data, as_of)
    assert ref.users_where(was) == {2, 3}
    assert ref.users_where(moved) == {2, 3}  # 1 ended exactly when the window starts; 4 before it
    for wh in (duck, pg):
        _load(wh, data)
        _load_history(wh, data)
        assert _users(wh, program, as_of, was) == {2, 3}, wh.dialect
        assert _users(wh, program, as_of, moved) == {2, 3}, wh.dialect
        assert _users(wh, program, as_of, I.Not(was)) == {1, 4, 5}, wh.dialect


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "bigquery", "spark", "trino"])
def test_history_golden_sql(dialect, update_golden):
    """The SQL of both history conditions, per dialect (refresh: pytest --update-golden), parsed back in it."""
    import sqlglot

    from tests.test_golden import GOLDEN, _compare

    cond = I.And((I.LabelWas("value_quadrant", "hf_lv", I.Dur(90, "d")),
                  I.LabelMoved("lifecycle", "mature", "declining", I.Dur(30, "d"))))
    compiler = AudienceSQL(PROGRAM, AS_OFS[1], dialect)
    sql = compiler.sql(compiler.condition(cond))
    assert sqlglot.parse_one(sql, read=dialect) is not None
    assert set(compiler.history_since()) == {"value_quadrant", "lifecycle"}
    _compare(GOLDEN / "sql" / f"history.{dialect}.sql", sql + "\n", update_golden)
