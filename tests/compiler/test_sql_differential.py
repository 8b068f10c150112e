"""The compiled SQL gives the same users as the reference evaluator, on DuckDB and PostgreSQL.

Generated data sits on the edges where bugs live: event times exactly at window bounds
and one second either side, NULLs everywhere, users without events, birthdays on 29
February and around midnight in far-apart time zones, texts with quotes, backslashes,
`;--` and CJK. Generated conditions cover every operator, aggregate and window. The as-of
times include a leap day, a month end and a daylight-saving change.

PostgreSQL is real (127.0.0.1:5432). Under CI=true these tests fail, not skip, when it is
unreachable. Long profile: CAMP_DIFF_EXAMPLES=20000 pytest tests/compiler/test_sql_differential.py
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import ir as I
from compiler import types as T
from compiler.check import check_workspace
from compiler.clock import minus
from compiler.sql import MANUAL_TAGS, REDEEMED, AudienceSQL
from compiler.workspace import load_workspace
from runtime.warehouse import connect, create_tables, tables
from tests.conftest import CAMPAIGNS, require_postgres
from tests.profiles import examples
from tests.reference import Data, Reference, manual_since

EXAMPLES = int(os.environ.get("CAMP_DIFF_EXAMPLES", "500"))
PROGRAM = check_workspace(load_workspace(Path(CAMPAIGNS))).program
SCHEMA = PROGRAM.schema
# the workspace's zone sets the calendar of d, w and mo windows: one without daylight saving, two with
PROGRAMS = {z: dataclasses.replace(PROGRAM, timezone=z) for z in ("Asia/Shanghai", "Europe/London", "America/New_York")}
CNY = T.money("CNY")

AS_OFS = [
    datetime(2024, 2, 29, 16, 30, tzinfo=UTC),  # 1 March 00:30 in Shanghai; leap day in UTC
    datetime(2026, 3, 31, 12, 0, tzinfo=UTC),  # minus one month lands on 28 February
    datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # the US switches to summer time
    datetime(2027, 2, 28, 15, 59, 59, tzinfo=UTC),  # 28 February, a year without a 29th
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
]
DST_AS_OFS = [  # as-of times whose windows cross a daylight-saving change in London or New York
    datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # New York, just after clocks went forward
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # London 02:30 BST, just after clocks went forward
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # London 01:30 BST, the first of the repeated hour
    datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # New York 01:30 EST, the second of the repeated hour
    datetime(2026, 4, 2, 9, 0, tzinfo=UTC),  # windows of a week and a month reach back over the spring change
]
DURS = [I.Dur(90, "m"), I.Dur(1, "h"), I.Dur(1, "d"), I.Dur(7, "d"), I.Dur(2, "w"), I.Dur(30, "d"), I.Dur(1, "mo"),
        I.Dur(365, "d")]
TEXTS = ["北京", "上海", "it's", "a\\b", ";--", "", "Ünïcode", "京", "x'); DROP TABLE users; --", "%_"]
ZONES = ["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", None]
BRANDS = ["Shiseido", "Lancôme", "雅诗兰黛", "o'neil", None]
TAGS = ["vip", "complained", "it's", "标签"]
CODES = ["X10", "HIGH20", "券20"]  # coupon codes of `redeemed(CODE)`


def user_attr(name: str) -> I.UserAttr:
    f = SCHEMA.users.fields[name]
    return I.UserAttr(name, f.column, f.type)


def order_field(name: str) -> I.EventField:
    f = SCHEMA.events["orders"].field(name)
    return I.EventField("orders", name, f.column, f.type)


# ------------------------------------------------------------------ data


@st.composite
def instants(draw, as_of: datetime, zone: str):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        base = as_of  # the upper end of every window
    elif kind in (1, 2):
        d = draw(st.sampled_from(DURS))
        base = minus(as_of, d, zone)
    else:
        base = as_of - timedelta(days=draw(st.integers(0, 400)), hours=draw(st.integers(0, 23)))
    return base + timedelta(seconds=draw(st.sampled_from([-1, 0, 0, 1, 3600])))


money = st.decimals(min_value=0, max_value=500, places=2).map(Decimal)


@st.composite
def datasets(draw):
    zone = draw(st.sampled_from(sorted(PROGRAMS)))
    as_of = draw(st.sampled_from(AS_OFS + DST_AS_OFS))
    n = draw(st.integers(1, 6))
    users = []
    for uid in range(1, n + 1):
        local_today = as_of.astimezone(timezone(timedelta(hours=8))).date()
        birthday = draw(st.one_of(
            st.none(), st.just(date(2000, 2, 29)),
            st.integers(-2, 2).map(lambda k, t=local_today: date(1990, t.month, min(t.day, 28)) + timedelta(days=k)),
            st.dates(min_value=date(1950, 1, 1), max_value=date(2010, 12, 31))))
        users.append({
            "user_id": uid, "name": draw(st.sampled_from(TEXTS + [None])), "city": draw(st.sampled_from(TEXTS + [None])),
            "gender": draw(st.sampled_from(["f", "m", "unknown", None])), "birthday": birthday,
            "registered_at": draw(st.none() | instants(as_of, zone)),
            "member_level": draw(st.sampled_from(["normal", "silver", "gold", None])),
            "balance": draw(st.none() | money), "timezone": draw(st.sampled_from(ZONES)),
            "phone": None, "email": draw(st.sampled_from(["a@b.c", None])),
        })
    orders = [{"user_id": draw(st.integers(1, n)), "created_at": draw(instants(as_of, zone)),
               "amount": draw(st.none() | money), "brand": draw(st.sampled_from(BRANDS)),
               "category": draw(st.sampled_from(["beauty", "shoes", None])), "shop": draw(st.sampled_from(["a", "b"])),
               "coupon_used": draw(st.sampled_from([True, False, None]))}
              for _ in range(draw(st.integers(0, 12)))]
    visits = [{"user_id": draw(st.integers(1, n)), "visited_at": draw(instants(as_of, zone)),
               "source": draw(st.sampled_from(["web", "app", "mini_program", None])), "seconds": Decimal(5)}
              for _ in range(draw(st.integers(0, 5)))]
    tags = sorted({(draw(st.integers(1, n)), draw(st.sampled_from(TAGS))) for _ in range(draw(st.integers(0, 4)))})
    redeemed = sorted({(draw(st.integers(1, n + 1)), draw(st.sampled_from(CODES)))  # n + 1: a user who is gone
                       for _ in range(draw(st.integers(0, 5)))})
    # manual tags (the ledger's, as text): some the schema's table also lists, some of a user who is gone
    # each with when its holding began (`tagged "x" for 30d`; the ledger keeps one holding per user and tag)
    pairs = sorted({(str(draw(st.integers(1, n + 1))), draw(st.sampled_from(TAGS))) for _ in range(draw(st.integers(0, 4)))}
                   | {(str(u), t) for u, t in tags if draw(st.booleans())})
    manual = [(u, t, draw(instants(as_of, zone))) for u, t in pairs]
    return as_of, Data(users=users, events={"orders": orders, "visits": visits}, tags=tags, redeemed=redeemed,
                       manual=manual), zone



HELD = [I.Dur(1, "d"), I.Dur(7, "d"), I.Dur(30, "d"), I.Dur(1, "mo"), I.Dur(12, "h")]  # `tagged "x" for D`

# ------------------------------------------------------------------ conditions

windows = st.one_of(
    st.builds(I.Win, op=st.sampled_from(["within", "after", "before"]), start=st.sampled_from(DURS)),
    st.tuples(st.sampled_from(DURS), st.sampled_from(DURS)).filter(lambda p: p[0].minutes() > p[1].minutes()).map(
        lambda p: I.Win("between", p[0], p[1])),
)
ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
money_const = money.map(lambda v: I.Const(v, CNY))
text_const = st.sampled_from(TEXTS).map(lambda v: I.Const(v, T.TEXT))
brand_const = st.sampled_from([b for b in BRANDS if b]).map(lambda v: I.Const(v, T.TEXT))

event_atoms = st.one_of(
    st.builds(I.Cmp, op=st.sampled_from(["=", "!="]), left=st.just(order_field("brand")), right=brand_const),
    st.just(order_field("coupon_used")),
    st.builds(I.Cmp, op=ops, left=st.just(order_field("amount")), right=money_const),
    st.builds(I.IsNull, subject=st.just(order_field("brand")), negated=st.booleans()),
    st.builds(I.InSet, subject=st.just(order_field("brand")), values=st.lists(brand_const, min_size=1, max_size=2).map(
        tuple), negated=st.booleans()),
)
event_conds = st.recursive(event_atoms, lambda c: st.one_of(
    st.builds(I.Not, operand=c), st.lists(c, min_size=2, max_size=3).map(lambda x: I.And(tuple(x))),
    st.lists(c, min_size=2, max_size=3).map(lambda x: I.Or(tuple(x)))), max_leaves=4)


STEPS = ["touch", "reminder"]
since_windows = st.sampled_from(STEPS).map(lambda s: I.Win("since", step=s))


def agg(func: str, field: str | None, t, windows=windows):
    return st.builds(lambda w, win: I.Agg(func, "orders", order_field(field) if field else None, w, win, t),
                     st.none() | event_conds, st.none() | windows)


small_number = st.integers(0, 4).map(lambda v: I.Const(Decimal(v), T.NUMBER))
percent = st.sampled_from([0, 25, 50, 100]).map(lambda v: I.Const(Decimal(v) / 100, T.PERCENT))


PERCENTS = [0, 20, 25, 50, 80, 100]
rank_percent = st.sampled_from(PERCENTS).map(lambda v: I.Const(Decimal(v) / 100, T.PERCENT))
fractions = st.sampled_from([Decimal("0.2"), Decimal("0.25"), Decimal("0.5"), Decimal("0.8"), Decimal("0.125"),
                             Decimal(1)])


def population_stats(among_conds):
    """Ranks, buckets and percentiles of counts, sums, averages and a user field (missing for some users), over
    everyone or `among` a generated condition (which may hold for no one); compared with constants and values."""
    counts = st.one_of(agg("count", None, T.NUMBER), st.just(I.Agg("count", "orders", None, None, None, T.NUMBER)))
    amounts = st.one_of(agg("sum", "amount", CNY), agg("max", "amount", CNY), st.just(user_attr("balance")))
    averages = agg("avg", "amount", CNY)  # ranked at 10 decimals; compared with constants only (as `avg` always is)
    times = st.one_of(st.sampled_from(["first", "last"]).map(
        lambda f: I.Agg(f, "orders", order_field("time"), None, None, T.TIMESTAMP)),
        st.just(user_attr("registered")), st.just(user_attr("birthday")))  # ranked, never interpolated
    values = st.one_of(counts, amounts, averages, times)
    among = st.none() | among_conds

    def stat(func, param=st.none()):
        return st.builds(lambda v, a, p: I.PopStat(func, v, a, p, T.PERCENT if func == "percent_rank" else T.NUMBER),
                         values, among, param)

    def percentile_of(value):
        return st.builds(lambda v, a, p: I.PopStat("percentile", v, a, p, I.type_of(v)), value, among, fractions)

    return st.one_of(
        st.builds(I.Cmp, op=ops, left=stat("percent_rank"), right=rank_percent),
        st.builds(I.Cmp, op=ops, left=stat("ntile", st.integers(1, 5).map(Decimal)), right=small_number),
        st.builds(I.IsNull, subject=stat("percent_rank"), negated=st.booleans()),
        st.builds(I.Cmp, op=ops, left=counts, right=percentile_of(counts)),
        st.builds(I.Cmp, op=ops, left=amounts, right=percentile_of(amounts)),
        st.builds(I.Cmp, op=ops, left=percentile_of(st.one_of(amounts, averages)), right=money_const),
    )


population_atoms = population_stats(st.recursive(
    st.one_of(st.builds(I.Cmp, op=ops, left=st.just(user_attr("balance")), right=money_const),
              st.builds(I.Cmp, op=ops, left=agg("count", None, T.NUMBER), right=small_number),
              st.sampled_from(TAGS).map(I.HasTag),
              st.builds(lambda w: I.Agg("any", "orders", None, w, None, T.BOOL), st.none() | event_conds)),
    lambda c: st.one_of(st.builds(I.Not, operand=c), st.lists(c, min_size=2, max_size=2).map(lambda x: I.And(tuple(x)))),
    max_leaves=3))


def conditions_over(windows):
    """Generated conditions whose time tests draw from `windows`."""
    counts = st.one_of(agg("count", None, T.NUMBER, windows), agg("count_distinct", "brand", T.NUMBER, windows))
    money_aggs = st.one_of(agg("sum", "amount", CNY, windows), agg("avg", "amount", CNY, windows),
                           agg("min", "amount", CNY, windows), agg("max", "amount", CNY, windows))
    atoms = st.one_of(
        st.builds(I.Cmp, op=ops, left=st.just(user_attr("balance")), right=money_const),
        st.builds(I.Cmp, op=ops, left=st.just(user_attr("city")), right=text_const),
        st.builds(I.InSet, subject=st.just(user_attr("city")), values=st.lists(text_const, min_size=1, max_size=3).map(
            tuple), negated=st.booleans()),
        st.builds(I.Cmp, op=st.sampled_from(["=", "!="]), left=st.just(user_attr("gender")),
                  right=st.sampled_from(["f", "m"]).map(lambda v: I.Const(v, SCHEMA.users.fields["gender"].type))),
        st.builds(I.TextMatch, op=st.sampled_from(["contains", "starts_with"]), subject=st.just(user_attr("city")),
                  pattern=st.sampled_from(TEXTS)),
        st.builds(I.IsNull, subject=st.sampled_from([user_attr("city"), user_attr("balance")]), negated=st.booleans()),
        st.builds(I.Between, subject=st.just(user_attr("balance")), low=money_const, high=money_const),
        st.builds(I.InWindow, subject=st.sampled_from([user_attr("registered"), user_attr("birthday")]), window=windows),
        st.builds(I.IsToday, subject=st.just(user_attr("birthday")), anniversary=st.booleans()),
        st.builds(I.IsToday, subject=st.just(user_attr("registered")), anniversary=st.booleans()),
        st.sampled_from(TAGS).map(I.HasTag),
        st.builds(I.HasTag, st.sampled_from(TAGS), st.sampled_from(HELD)),
        st.sampled_from(CODES).map(I.Redeemed),
        st.builds(lambda f, w, win: I.Agg(f, "orders", None, w, win, T.BOOL), st.sampled_from(["any", "none"]),
                  st.none() | event_conds, st.none() | windows),
        st.builds(I.Cmp, op=ops, left=counts, right=small_number),
        st.builds(I.Cmp, op=ops, left=money_aggs, right=money_const),
        st.builds(I.InWindow, subject=st.sampled_from(["first", "last"]).map(
            lambda f: I.Agg(f, "orders", order_field("time"), None, None, T.TIMESTAMP)), window=windows),
        st.builds(I.Cmp, op=st.sampled_from(["=", "!="]), left=st.sampled_from(["first", "last"]).map(
            lambda f: I.Agg(f, "orders", order_field("brand"), None, None, T.TEXT)), right=brand_const),
        st.builds(lambda a, b, op, p: I.Cmp(op, I.Arith("/", a, b, T.NUMBER), p),
                  agg("count", None, T.NUMBER, windows), agg("count", None, T.NUMBER, windows), ops, percent),
        st.builds(I.LabelIs, classification=st.just("lifecycle"),
                  labels=st.lists(st.sampled_from(PROGRAM.classifications["lifecycle"].labels), min_size=1,
                                  max_size=2).map(tuple)),
        st.builds(I.LabelIs, classification=st.just("promo_sensitivity"),
                  labels=st.lists(st.sampled_from(PROGRAM.classifications["promo_sensitivity"].labels), min_size=1,
                                  max_size=2).map(tuple)),
        population_atoms,
    )
    return st.recursive(atoms, lambda c: st.one_of(
        st.builds(I.Not, operand=c), st.lists(c, min_size=2, max_size=3).map(lambda x: I.And(tuple(x))),
        st.lists(c, min_size=2, max_size=3).map(lambda x: I.Or(tuple(x)))), max_leaves=6)


conditions = conditions_over(windows)
journey_conditions = conditions_over(st.one_of(windows, since_windows))


# ------------------------------------------------------------------ engines


def _load(wh, data: Data) -> None:
    layout = tables(SCHEMA)
    for table in layout:
        wh.execute(f'DELETE FROM "{table}"')
    def put(table, rows):
        cols = [c for c, _ in layout[table]]
        wh.insert(table, cols, [tuple(r.get(c) for c in cols) for r in rows])
    put(SCHEMA.users.table, data.users)
    put(SCHEMA.events["orders"].table, data.events.get("orders", []))
    put(SCHEMA.events["visits"].table, data.events.get("visits", []))
    wh.insert(SCHEMA.tags.table, ["user_id", "tag"], data.tags)
    wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {REDEEMED} (user_id text, code text)")  # as runtime.ledger_facts does
    wh.execute(f"DELETE FROM {REDEEMED}")
    wh.insert(REDEEMED, ["user_id", "code"], [(str(u), code) for u, code in data.redeemed])
    wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {MANUAL_TAGS} (user_id text, tag text, since timestamptz)")  # as
    wh.execute(f"DELETE FROM {MANUAL_TAGS}")  # runtime.ledger_facts does
    wh.insert(MANUAL_TAGS, ["user_id", "tag", "since"], [(m[0], m[1], manual_since(m)) for m in data.manual])


@pytest.fixture(scope="module")
def duck():
    wh = connect("duckdb:///:memory:")
    create_tables(wh, SCHEMA)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def pg():
    wh = require_postgres()
    schema = f"camp_diff_{os.getpid()}"
    wh.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    wh.execute(f'SET search_path TO "{schema}"')
    create_tables(wh, SCHEMA)
    yield wh
    wh.execute(f'DROP SCHEMA "{schema}" CASCADE')
    wh.close()


def _engine_users(wh, cond, as_of, program=PROGRAM, manual_tags: bool = True) -> set:
    compiler = AudienceSQL(program, as_of, wh.dialect, manual_tags=manual_tags)
    return {r[0] for r in wh.rows(compiler.sql(compiler.condition(cond), pretty=False))}


@settings(max_examples=examples(EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
@given(datasets(), conditions, st.booleans())
def test_sql_equals_reference_on_duckdb_and_postgres(duck, pg, case, cond, manual):
    """manual: compiled to read the manual tags too (a run's plan, `camp audience`), else only the schema's tags
    table (outcomes), whose reference then knows of no manual tag."""
    as_of, data, zone = case
    if not manual:
        data = dataclasses.replace(data, manual=[])
    expected = Reference(PROGRAMS[zone], data, as_of).users_where(cond)
    for wh in (duck, pg):
        _load(wh, data)
        assert _engine_users(wh, cond, as_of, PROGRAMS[zone], manual) == expected, (wh.dialect, zone, manual)


NO_TAGS = {z: dataclasses.replace(p, schema=dataclasses.replace(SCHEMA, tags=None)) for z, p in PROGRAMS.items()}


@settings(max_examples=examples(max(EXAMPLES // 5, 20)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(datasets(), conditions, st.booleans())
def test_without_a_tags_declaration_tagged_reads_manual_tags_only(duck, pg, case, cond, manual):
    """A workspace that declares no `tags`: `tagged "x"` holds for the users tagged by hand (and for nobody
    when the query does not read manual tags), whatever a table named like the tags table holds."""
    as_of, data, zone = case
    if not manual:
        data = dataclasses.replace(data, manual=[])
    expected = Reference(NO_TAGS[zone], data, as_of).users_where(cond)
    for wh in (duck, pg):
        _load(wh, data)
        assert _engine_users(wh, cond, as_of, NO_TAGS[zone], manual) == expected, (wh.dialect, zone, manual)


def test_tagged_is_either_source(duck, pg):
    """User 1 is in the tags table, 2 tagged by hand, 3 both, 4 neither (tagged "vip" by hand for another tag);
    `99` tagged by hand is no user."""
    data = Data(users=[{"user_id": i} for i in range(1, 5)], tags=[(1, "vip"), (3, "vip")],
                manual=[("2", "vip"), ("3", "vip"), ("4", "vip2"), ("99", "vip")])
    cond = I.HasTag("vip")
    for program, manual, expected in ((PROGRAM, True, {1, 2, 3}), (PROGRAM, False, {1, 3}),
                                      (NO_TAGS["Asia/Shanghai"], True, {2, 3}), (NO_TAGS["Asia/Shanghai"], False, set())):
        used = data if manual else dataclasses.replace(data, manual=[])
        assert Reference(program, used, AS_OFS[0]).users_where(cond) == expected
        assert Reference(program, used, AS_OFS[0]).users_where(I.Not(cond)) == {1, 2, 3, 4} - expected
        for wh in (duck, pg):
            _load(wh, used)
            assert _engine_users(wh, cond, AS_OFS[0], program, manual) == expected, (wh.dialect, manual)
            assert _engine_users(wh, I.Not(cond), AS_OFS[0], program, manual) == {1, 2, 3, 4} - expected


def test_any_of_several_tags_and_excluded_tags(duck, pg):
    """`tagged a or tagged b or ...` (one EXISTS over both tags on PostgreSQL) and a campaign's `exclude
    tagged` (an anti-join in the final audience's WHERE), from either source of tags, on both engines."""
    users = [{"user_id": i, "city": "北京" if i % 2 else "上海"} for i in range(1, 9)]
    data = Data(users=users, tags=[(1, "vip"), (2, "gold"), (3, "vip"), (3, "gold"), (5, "complained"),
                                   (6, "other")],
                manual=[("4", "gold"), ("6", "vip"), ("7", "complained"), ("99", "vip")])
    city = I.Cmp("=", user_attr("city"), I.Const("北京", T.TEXT))
    conds = [I.Or((I.HasTag("vip"), I.HasTag("gold"))), I.Or((I.HasTag("vip"), city, I.HasTag("gold"))),
             I.Not(I.Or((I.HasTag("gold"), I.HasTag("vip")))), I.And((I.Or((I.HasTag("vip"), I.HasTag("nobody"))),
                                                                   I.Not(I.HasTag("complained"))))]
    campaign = dataclasses.replace(PROGRAM.campaigns["multi_tag_coupon"],
                                   audience=I.Or((I.HasTag("vip"), I.HasTag("gold"), city)),
                                   excludes=[I.HasTag("complained"), I.HasTag("other")])
    for manual in (True, False):
        used = data if manual else dataclasses.replace(data, manual=[])
        ref = Reference(PROGRAM, used, AS_OFS[0])
        for wh in (duck, pg):
            _load(wh, used)
            for cond in conds:
                assert _engine_users(wh, cond, AS_OFS[0], PROGRAM, manual) == ref.users_where(cond), (wh.dialect, cond)
            c = AudienceSQL(PROGRAM, AS_OFS[0], wh.dialect, manual_tags=manual)
            sql = c.sql(c.final(campaign), pretty=False)
            assert {r[0] for r in wh.rows(sql)} == ref.campaign(campaign)["final"], (wh.dialect, manual)
            assert set(c.tag_names()) == {"vip", "gold", "complained", "other"}  # what the runtime loads
            if wh.dialect == "postgres":
                assert sql.count("EXISTS") == (4 if manual else 2) and "tags_" not in sql


@settings(max_examples=examples(EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
@given(datasets(), st.one_of(population_atoms, st.lists(population_atoms, min_size=2, max_size=3).map(
    lambda x: I.And(tuple(x))), population_atoms.map(I.Not)))
def test_ranks_and_percentiles_equal_reference_on_duckdb_and_postgres(duck, pg, case, cond):
    """percent_rank, ntile and percentile alone (the mixed conditions above draw them too): ties (users without
    orders all count 0), users left out (no average, no balance), empty populations (`among` no one)."""
    as_of, data, zone = case
    expected = Reference(PROGRAMS[zone], data, as_of).users_where(cond)
    for wh in (duck, pg):
        _load(wh, data)
        assert _engine_users(wh, cond, as_of, PROGRAMS[zone]) == expected, (wh.dialect, zone)


def test_holdout_is_the_same_on_every_engine(duck, pg):
    users = [{"user_id": i, "timezone": None} for i in range(1, 2001)]
    data = Data(users=users)
    campaign = PROGRAM.campaigns["winback_high_value"]
    from dataclasses import replace

    everyone = replace(campaign, audience=I.Const(True, T.BOOL), excludes=[])
    as_of = AS_OFS[0]
    ref = Reference(PROGRAM, data, as_of).campaign(everyone)
    assert 150 <= len(ref["held_out"]) <= 250  # 10% of 2,000, give or take
    for wh in (duck, pg):
        _load(wh, data)
        c = AudienceSQL(PROGRAM, as_of, wh.dialect)
        rows = wh.rows(c.sql(c.campaign(everyone), pretty=False))
        assert {r[0] for r in rows if r[2]} == ref["held_out"], wh.dialect
        final = wh.rows(AudienceSQL(PROGRAM, as_of, wh.dialect).sql(
            AudienceSQL(PROGRAM, as_of, wh.dialect).final(everyone), pretty=False))
        assert {r[0] for r in final} == ref["final"], wh.dialect


@pytest.mark.parametrize("literal", ["it's", "a\\b", ";--", "x'); DROP TABLE users; --", "北京", "\"q\"", "%", "_",
                                     "\\'", "a\x00b"])
def test_literals_are_data(duck, pg, literal):
    users = [{"user_id": 1, "city": literal.replace("\x00", "")}, {"user_id": 2, "city": "other"}]
    data = Data(users=users)
    for op in ("=", "!="):
        cond = I.Cmp(op, user_attr("city"), I.Const(literal, T.TEXT))
        expected = Reference(PROGRAM, data, AS_OFS[0]).users_where(cond)
        for wh in (duck, pg):
            _load(wh, data)
            assert _engine_users(wh, cond, AS_OFS[0]) == expected, (wh.dialect, op)
    for wh in (duck, pg):
        assert wh.rows('SELECT COUNT(*) FROM "users"')[0][0] == 2  # nothing was executed from the literal


def _boundary_instants(as_of: datetime, zone: str) -> list[datetime]:
    points = {as_of} | {minus(as_of, d, zone) for d in DURS}
    return sorted({p + timedelta(seconds=k) for p in points for k in (-1, 0, 1)})


ALL_WINDOWS = [I.Win(op, d) for op in ("within", "after", "before") for d in DURS] + \
    [I.Win("between", a, b) for a in DURS for b in DURS if a.minutes() > b.minutes()]


@pytest.mark.parametrize(("as_of", "zone"), [(a, "Asia/Shanghai") for a in AS_OFS] +
                         [(a, z) for a in DST_AS_OFS for z in ("Europe/London", "America/New_York")],
                         ids=lambda v: v.isoformat() if isinstance(v, datetime) else v)
def test_every_window_at_every_boundary(duck, pg, as_of, zone):
    """Deterministic and exhaustive where random data is thin: a user and an order at each bound ±1 s, the
    bounds on the workspace's calendar (a DST change inside the window moves them off the 24-hour grid)."""
    instants = _boundary_instants(as_of, zone)
    users = [{"user_id": i + 1, "registered_at": t, "birthday": t.date()} for i, t in enumerate(instants)]
    orders = [{"user_id": i + 1, "created_at": t, "amount": Decimal(1)} for i, t in enumerate(instants)]
    data = Data(users=users, events={"orders": orders})
    for wh in (duck, pg):
        _load(wh, data)
    ref = Reference(PROGRAMS[zone], data, as_of)
    for w in ALL_WINDOWS:
        conds = [I.InWindow(user_attr("registered"), w), I.InWindow(user_attr("birthday"), w),
                 I.Agg("any", "orders", None, None, w, T.BOOL)]
        for cond in conds:
            expected = ref.users_where(cond)
            for wh in (duck, pg):
                assert _engine_users(wh, cond, as_of, PROGRAMS[zone]) == expected, (wh.dialect, w,
                                                                                     type(cond).__name__)


@pytest.mark.parametrize("as_of", AS_OFS, ids=lambda d: d.isoformat())
def test_birthdays_in_every_zone(duck, pg, as_of):
    users, uid = [], 0
    for zone in ZONES:
        local = as_of.astimezone(timezone(timedelta(0))).date()
        days = [local + timedelta(days=k) for k in range(-2, 3)] + [date(2000, 2, 29), date(2004, 2, 28)]
        for d in days:
            for year in (1990, 2000):
                try:
                    b = d.replace(year=year)
                except ValueError:
                    b = d
                uid += 1
                users.append({"user_id": uid, "birthday": b, "timezone": zone,
                              "registered_at": datetime(b.year, b.month, b.day, 12, tzinfo=UTC)})
    data = Data(users=users)
    for wh in (duck, pg):
        _load(wh, data)
    ref = Reference(PROGRAM, data, as_of)
    for cond in (I.IsToday(user_attr("birthday"), False), I.IsToday(user_attr("birthday"), True),
                 I.IsToday(user_attr("registered"), False), I.IsToday(user_attr("registered"), True)):
        expected = ref.users_where(cond)
        for wh in (duck, pg):
            assert _engine_users(wh, cond, as_of) == expected, (wh.dialect, cond)


# ------------------------------------------------------------------ journeys: `since STEP` over a cohort


@st.composite
def journeys(draw):
    """A data set and its cohort: some users, each with the times `touch` and then `reminder` were sent
    (on event times, a second either side, or anywhere in the last 400 days)."""
    as_of, data, zone = draw(datasets())
    times = [o["created_at"] for o in data.events.get("orders", [])] + [as_of]
    sent_at = st.one_of(st.sampled_from(times), instants(as_of, zone)).flatmap(
        lambda t: st.sampled_from([t - timedelta(seconds=1), t, t + timedelta(seconds=1)]))
    cohort = draw(st.sets(st.sampled_from([u["user_id"] for u in data.users])))
    for uid in sorted(cohort):
        touch = min(draw(sent_at), as_of)
        data.since.setdefault("touch", {})[uid] = touch
        data.since.setdefault("reminder", {})[uid] = min(max(touch, draw(sent_at)), as_of)
    return as_of, data, cohort, zone


def _load_cohort(wh, data: Data, cohort: set) -> None:
    wh.execute("CREATE TEMP TABLE IF NOT EXISTS camp_cohort (user_id text, since_touch timestamptz, "
               "since_reminder timestamptz)")
    wh.execute("DELETE FROM camp_cohort")
    wh.insert("camp_cohort", ["user_id", "since_touch", "since_reminder"],
              [(str(u), data.since["touch"][u], data.since["reminder"][u]) for u in sorted(cohort)])


@settings(max_examples=examples(max(EXAMPLES // 2, 50)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(journeys(), journey_conditions)
def test_since_step_equals_reference_on_duckdb_and_postgres(duck, pg, case, cond):
    """A follow-up's conditions (`since STEP` beside ordinary windows) over its cohort only."""
    as_of, data, cohort, zone = case
    expected = Reference(PROGRAMS[zone], data, as_of).users_where(cond, cohort)
    for wh in (duck, pg):
        _load(wh, data)
        _load_cohort(wh, data, cohort)
        compiler = AudienceSQL(PROGRAMS[zone], as_of, wh.dialect, cohort=True, manual_tags=True)  # as a plan has it
        got = {r[0] for r in wh.rows(compiler.sql(compiler.condition(cond), pretty=False))}
        assert got == expected, (wh.dialect, zone)


def test_since_boundaries(duck, pg):
    """An order and a registration exactly at the send time (counts), a second before (does not), at
    the as-of time (does not); a date on the send day counts only when the day starts at or after it."""
    as_of = AS_OFS[1]
    sent = datetime(2026, 3, 20, 16, 0, tzinfo=UTC)  # midnight of 21 March in Shanghai
    users, orders = [], []
    for uid, t in enumerate([sent - timedelta(seconds=1), sent, sent + timedelta(seconds=1), as_of], start=1):
        users.append({"user_id": uid, "registered_at": t, "birthday": t.astimezone(ZoneInfo("Asia/Shanghai")).date()})
        orders.append({"user_id": uid, "created_at": t, "amount": Decimal(1)})
    data = Data(users=users, events={"orders": orders},
                since={"touch": {u["user_id"]: sent for u in users}, "reminder": {u["user_id"]: sent for u in users}})
    cohort = {1, 2, 3, 4}
    ref = Reference(PROGRAM, data, as_of)
    w = I.Win("since", step="touch")
    conds = [I.Agg("any", "orders", None, None, w, T.BOOL), I.InWindow(user_attr("registered"), w),
             I.InWindow(user_attr("birthday"), w)]
    assert ref.users_where(conds[0], cohort) == {2, 3}
    for wh in (duck, pg):
        _load(wh, data)
        _load_cohort(wh, data, cohort)
        for cond in conds:
            compiler = AudienceSQL(PROGRAM, as_of, wh.dialect, cohort=True)
            got = {r[0] for r in wh.rows(compiler.sql(compiler.condition(cond), pretty=False))}
            assert got == ref.users_where(cond, cohort), (wh.dialect, cond)


def test_one_compiler_gives_each_campaign_the_query_a_fresh_one_gives():
    """AudienceSQL keeps no state between queries (issue 12): compiling every bundled campaign with one instance,
    in two orders, gives exactly the SQL a new instance gives each."""
    from datetime import UTC, datetime
    from pathlib import Path

    from compiler.check import check_workspace
    from compiler.sql import AudienceSQL
    from compiler.workspace import load_workspace

    program = check_workspace(load_workspace(Path(__file__).resolve().parents[2] / "campaigns")).program
    at = datetime(2026, 12, 1, 2, tzinfo=UTC)
    names = sorted(program.campaigns)
    for order in (names, names[::-1]):
        for dialect in ("duckdb", "postgres"):
            one = AudienceSQL(program, at, dialect)
            for n in order:
                fresh = AudienceSQL(program, at, dialect)
                c = program.campaigns[n]
                assert one.sql(one.final(c)) == fresh.sql(fresh.final(c)), n
                assert one.sql(one.condition(c.audience)) == fresh.sql(fresh.condition(c.audience)), n


# ------------------------------------------------------------------ outcomes: `from t0` windows per exposure

from_windows = st.one_of(st.just(I.Win("from")), st.sampled_from(DURS).map(lambda d: I.Win("from", start=d)))
outcome_conditions = conditions_over(st.one_of(windows, from_windows))


@st.composite
def exposures(draw):
    """A data set and its exposures: some users, each with a t0 on an event time, or a window's length before
    one (the event then lands on the window's end), a second either side, or anywhere in the last 400 days."""
    as_of, data, zone = draw(datasets())
    data = dataclasses.replace(data, manual=[])  # outcomes read only the schema's tags table
    times = [o["created_at"] for o in data.events.get("orders", [])] + [as_of]
    on_event = st.sampled_from(times)
    before_event = st.tuples(st.sampled_from(times), st.sampled_from(DURS)).map(lambda p: minus(p[0], p[1], zone))
    t0 = st.one_of(on_event, before_event, instants(as_of, zone)).flatmap(
        lambda t: st.sampled_from([t - timedelta(seconds=1), t, t + timedelta(seconds=1)]))
    for uid in sorted(draw(st.sets(st.sampled_from([u["user_id"] for u in data.users])))):
        data.t0[uid] = min(draw(t0), as_of)
    return as_of, data, zone


def _load_exposures(wh, data: Data) -> None:
    wh.execute("CREATE TEMP TABLE IF NOT EXISTS camp_exposure (exposure_id text, user_id text, t0 timestamptz)")
    wh.execute("DELETE FROM camp_exposure")
    wh.insert("camp_exposure", ["exposure_id", "user_id", "t0"],
              [(f"x{u}", str(u), t) for u, t in sorted(data.t0.items())])


def _exposed(wh, program, as_of, cond) -> set:
    """The exposures the query counts as converted, compiled without and with the t0 range (where the zone's
    clocks do not change over it, windows of days end at t0 plus whole days: both compilations must agree)."""
    found = []
    for span in (None, _t0_range(wh)):
        compiler = AudienceSQL(program, as_of, wh.dialect, exposure=True, t0_range=span)
        rows = wh.rows(compiler.sql(compiler.per_exposure(cond, [], None), pretty=False))
        found.append({int(x.removeprefix("x")) for x, converted, _ in rows if converted})
    assert found[0] == found[1], (wh.dialect, program.timezone)
    return found[0]


def _t0_range(wh) -> tuple | None:
    first, last = wh.rows("SELECT MIN(t0), MAX(t0) FROM camp_exposure")[0]
    return (first, last) if first is not None else None


@settings(max_examples=examples(max(EXAMPLES // 2, 50)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(exposures(), outcome_conditions)
def test_from_t0_equals_reference_on_duckdb_and_postgres(duck, pg, case, cond):
    """An outcome's conditions (`from t0` windows beside ordinary windows), one row per exposure."""
    as_of, data, zone = case
    expected = Reference(PROGRAMS[zone], data, as_of).users_where(cond, set(data.t0))
    for wh in (duck, pg):
        _load(wh, data)
        _load_exposures(wh, data)
        assert _exposed(wh, PROGRAMS[zone], as_of, cond) == expected, (wh.dialect, zone)


@pytest.mark.parametrize("zone", sorted(PROGRAMS))
def test_from_t0_boundaries_across_daylight_saving(duck, pg, zone):
    """Orders exactly at t0 (count), a second before t0 and exactly at t0 + 1d / 1mo (do not), a second before
    the end (counts), for t0 the day and the month before every DST as-of time, whose wall clock the engines
    read in a skipped or repeated hour."""
    program = PROGRAMS[zone]
    for d in (I.Dur(1, "d"), I.Dur(1, "mo"), I.Dur(2, "h")):
        for as_of in DST_AS_OFS:
            t0 = minus(as_of, d, zone)
            ref_end = Reference(program, Data(users=[]), as_of + timedelta(days=40)).later(t0, d)
            offsets = [timedelta(seconds=-1), timedelta(0), ref_end - t0 - timedelta(seconds=1), ref_end - t0]
            users = [{"user_id": i} for i in range(1, 5)]
            orders = [{"user_id": i, "created_at": t0 + off, "amount": Decimal(1)}
                      for i, off in enumerate(offsets, start=1)]
            data = Data(users=users, events={"orders": orders}, t0={i: t0 for i in range(1, 5)})
            late = as_of + timedelta(days=40)
            cond = I.Agg("any", "orders", None, None, I.Win("from", start=d), T.BOOL)
            expected = Reference(program, data, late).users_where(cond, set(data.t0))
            assert expected == {2, 3}, (zone, d, as_of)
            for wh in (duck, pg):
                _load(wh, data)
                _load_exposures(wh, data)
                assert _exposed(wh, program, late, cond) == expected, (wh.dialect, zone, d, as_of)


@settings(max_examples=examples(max(EXAMPLES // 5, 20)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(exposures(), exposures(), outcome_conditions)
def test_each_exposure_of_a_user_counts_from_its_own_t0(duck, pg, case, other, cond):
    """A user in two occurrences has two exposures, each with its own t0: each row equals the reference
    evaluated with that t0 (the second occurrence's t0s are drawn from another data set's)."""
    as_of, data, zone = case
    t0s = [min(t, as_of) for t in other[1].t0.values()]
    later = dataclasses.replace(data, t0=dict(zip(sorted(data.t0), t0s, strict=False)))
    expected = ({("x", u) for u in Reference(PROGRAMS[zone], data, as_of).users_where(cond, set(data.t0))}
                | {("y", u) for u in Reference(PROGRAMS[zone], later, as_of).users_where(cond, set(later.t0))})
    for wh in (duck, pg):
        _load(wh, data)
        _load_exposures(wh, data)
        wh.insert("camp_exposure", ["exposure_id", "user_id", "t0"],
                  [(f"y{u}", str(u), t) for u, t in sorted(later.t0.items())])
        for span in (None, _t0_range(wh)):
            compiler = AudienceSQL(PROGRAMS[zone], as_of, wh.dialect, exposure=True, t0_range=span)
            rows = wh.rows(compiler.sql(compiler.per_exposure(cond, [], None), pretty=False))
            assert {(x[0], int(x[1:])) for x, converted, _ in rows if converted} == expected, (wh.dialect, zone)
