"""`camp sync`: the shop's orders mark issued coupons redeemed (with the order's time and amount, the discount
and a note on scope, validity and minimum spend) and old unused ones expired, idempotently and tolerating late
orders, on DuckDB and PostgreSQL; caps then count only the coupons users still hold."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from compiler.config import CouponsSection
from dsl.diagnostics import Diagnostic
from runtime.coupon_sync import SyncResult, sync_coupons
from runtime.ledger import open_ledger
from runtime.ledger.connection import MANY
from runtime.ledger.store import COUPON_COLS
from runtime.warehouse import connect, create_tables
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp, make_workspace, pg_schema
from tests.runtime.steps import program_of, run_engine

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ORDER_COLS = ["user_id", "created_at", "amount", "brand", "category", "shop", "coupon_used", "coupon_id"]
NOTES = ("out of scope", "outside validity", "below min spend")


@pytest.fixture(scope="module")
def schema():
    return program_of(CAMPAIGNS)[1].schema


@pytest.fixture(params=["duckdb", "postgres"])
def world(request, tmp_path, schema):
    """(ledger URL, warehouse URL): DuckDB files, or two fresh schemas of the test PostgreSQL."""
    if request.param == "duckdb":
        urls = f"duckdb:///{tmp_path / 'ledger.duckdb'}", f"duckdb:///{tmp_path / 'shop.duckdb'}"
        _create_shop(urls[1], schema)
        yield urls
        return
    name = request.node.name.split("[")[0][-24:]
    with pg_schema(f"camp_sync_l_{os.getpid()}_{name}") as ledger, pg_schema(f"camp_sync_w_{os.getpid()}_{name}") as wh:
        _create_shop(wh, schema)
        yield ledger, wh


def _create_shop(url: str, schema) -> None:
    wh = connect(url)
    create_tables(wh, schema)
    wh.close()


def _source(schema, late: str = "3d"):
    source = CouponsSection(coupon_field="coupon_id", late_data=late).redemptions(schema)
    assert source is not None
    return source


def _coupon(cid: str, user: str, issued: datetime, days: int = 7, value: str = "10", min_spend: str | None = None,
            scope: str = "{}", state: str = "issued") -> tuple:
    return (cid, f"k/{cid}", "c", "C10", user, Decimal(value), "CNY", Decimal(min_spend) if min_spend else None,
            scope, state, issued, issued, issued, issued + days * DAY, None)


def _issue(ledger_url: str, coupons: list[tuple]) -> None:
    lg = open_ledger(ledger_url)
    with lg.decision():
        lg.record_decisions([], coupons, [])
    lg.close()


def _order(user: int, at: datetime, amount: str | None, coupon_id: str | None, category: str = "beauty") -> tuple:
    return (user, at, Decimal(amount) if amount is not None else None, "b", category, "shop_1", coupon_id is not None,
            coupon_id)


def _orders(url: str, rows: list[tuple]) -> None:
    wh = connect(url)
    wh.insert("orders", ORDER_COLS, rows)
    wh.close()


def _sync(world, schema, as_of: datetime, late: str = "3d") -> SyncResult:
    lg = open_ledger(world[0])
    try:
        return sync_coupons(lg, world[1], _source(schema, late), as_of)
    finally:
        lg.close()


def _coupons(ledger_url: str) -> dict[str, tuple]:
    lg = open_ledger(ledger_url)
    try:
        return {r[0]: tuple(r[1:]) for r in lg.rows(
            "SELECT coupon_id, state, redeemed_at, redeemed_order_at, order_amount, discount, redemption, expired_at "
            "FROM camp_coupons ORDER BY coupon_id")}
    finally:
        lg.close()


def test_a_redemption_is_recorded_with_its_order_amount_and_discount_once(world, schema):
    _issue(world[0], [_coupon("a", "1", T0), _coupon("b", "2", T0, value="50"), _coupon("c", "3", T0)])
    _orders(world[1], [_order(1, T0 + DAY, "30", "a"), _order(1, T0 + 2 * DAY, "99", "a"),  # the first one counts
                       _order(2, T0 + 3 * DAY, "20", "b"),  # worth less than the coupon: the discount is the amount
                       _order(3, T0 + DAY, "40", "nobody-issued-this"), _order(3, T0 + DAY, "40", None),
                       _order(1, T0 - 30 * DAY, "15", "a")])  # before any outstanding coupon was issued: not read
    at = T0 + 4 * DAY
    assert _sync(world, schema, at) == SyncResult(2, 0, 0, 0, 0, 0)
    rows = _coupons(world[0])
    assert rows["a"] == ("redeemed", at, T0 + DAY, Decimal("30.00"), Decimal("10.00"), "ok", None)
    assert rows["b"] == ("redeemed", at, T0 + 3 * DAY, Decimal("20.00"), Decimal("20.00"), "ok", None)
    assert rows["c"] == ("issued", None, None, None, None, None, None)
    assert _sync(world, schema, at + DAY) == SyncResult(0, 0, 0, 0, 0, 2)  # a rerun changes nothing
    assert _coupons(world[0]) == rows


def test_orders_after_as_of_are_not_read_yet(world, schema):
    _issue(world[0], [_coupon("a", "1", T0)])
    _orders(world[1], [_order(1, T0 + 2 * DAY, "30", "a")])
    assert _sync(world, schema, T0 + DAY).redeemed == 0
    assert _sync(world, schema, T0 + 2 * DAY).redeemed == 1


def test_out_of_scope_outside_validity_and_below_min_spend_are_noted_and_still_redeemed(world, schema):
    _issue(world[0], [_coupon("scope", "1", T0, scope='{"category": ["beauty", "bags"]}'),
                      _coupon("late", "2", T0, days=2), _coupon("early", "3", T0 + DAY),
                      _coupon("spend", "4", T0, min_spend="100"), _coupon("ok", "5", T0, min_spend="100",
                                                                         scope='{"category": ["beauty"]}'),
                      _coupon("both", "6", T0, days=1, scope='{"category": ["beauty"]}')])
    _orders(world[1], [_order(1, T0 + DAY, "30", "scope", category="shoes"),
                       _order(2, T0 + 2 * DAY, "30", "late"),  # usable_to is the first instant it is not
                       _order(3, T0 + DAY - timedelta(minutes=1), "30", "early"),
                       _order(4, T0 + DAY, "99.99", "spend"), _order(5, T0 + DAY, "100", "ok"),
                       _order(6, T0 + 2 * DAY, "5", "both", category=None)])  # scope is checked first
    assert _sync(world, schema, T0 + 3 * DAY) == SyncResult(6, 2, 2, 1, 0, 0)
    notes = {cid: (row[0], row[5]) for cid, row in _coupons(world[0]).items()}
    assert notes == {"scope": ("redeemed", "out of scope: category=shoes"), "late": ("redeemed", "outside validity"),
                     "early": ("redeemed", "outside validity"), "spend": ("redeemed", "below min spend"),
                     "ok": ("redeemed", "ok"), "both": ("redeemed", "out of scope: category=NULL")}


def test_late_orders_are_matched_within_late_data_then_coupons_expire(world, schema):
    _issue(world[0], [_coupon("a", "1", T0, days=7), _coupon("b", "2", T0, days=7), _coupon("c", "3", T0, days=30)])
    end = T0 + 7 * DAY
    assert _sync(world, schema, end + DAY) == SyncResult(0, 0, 0, 0, 0, 0)  # no orders yet, still inside late_data
    _orders(world[1], [_order(1, end - timedelta(hours=1), "30", "a")])  # arrives two days after it was placed
    assert _sync(world, schema, end + 2 * DAY) == SyncResult(1, 0, 0, 0, 0, 0)
    after = end + 3 * DAY + timedelta(minutes=1)
    assert _sync(world, schema, after) == SyncResult(0, 0, 0, 0, 1, 1)
    _orders(world[1], [_order(2, end - timedelta(hours=1), "30", "b")])  # too late: b expired
    assert _sync(world, schema, after + DAY) == SyncResult(0, 0, 0, 0, 0, 1)
    rows = _coupons(world[0])
    assert [rows[c][0] for c in "abc"] == ["redeemed", "expired", "issued"]
    assert rows["b"][6] == after and rows["a"][6] is None
    lg = open_ledger(world[0])
    assert [c.user_id for c in lg.held_coupons(["1", "2", "3"]) if c.unused] == ["3"]  # neither redeemed nor expired
    # over MANY users they go to the query as a TEMP table: the same coupons
    many = ["1", "3"] + [f"x{i}" for i in range(MANY)]
    assert sorted(lg.held_coupons(many)) == sorted(c for c in lg.held_coupons(["1", "2", "3"]) if c.user_id != "2")
    lg.close()


def test_counts_equal_a_pandas_computation_from_the_raw_orders_and_the_ledger(world, schema):
    rnd = random.Random(7)
    scopes = ["{}", '{"category": ["beauty"]}', '{"category": ["beauty", "shoes"]}']
    coupons = [_coupon(f"c{i:03}", str(i), T0 + rnd.randrange(0, 10) * DAY, days=rnd.choice([1, 3, 7]),
                       value=rnd.choice(["5", "20", "50"]), min_spend=rnd.choice([None, "30", "60"]),
                       scope=rnd.choice(scopes), state=rnd.choice(["issued"] * 6 + ["redeemed", "void"]))
               for i in range(120)]
    _issue(world[0], coupons)
    orders = [_order(rnd.randrange(1, 50), T0 + timedelta(hours=rnd.randrange(-48, 24 * 16)),
                     rnd.choice([None, "10", "29.99", "30", "45", "80"]),
                     rnd.choice([f"c{rnd.randrange(0, 140):03}", None, "zzz"]), rnd.choice(["beauty", "shoes", None]))
              for _ in range(400)]
    _orders(world[1], orders)
    as_of = T0 + 14 * DAY
    got = _sync(world, schema, as_of)
    expected, states = _independent(coupons, orders, as_of, late=timedelta(days=3))
    assert got == expected
    assert {cid: row[0] for cid, row in _coupons(world[0]).items()} == states
    assert got.redeemed and got.out_of_scope and got.outside_validity and got.below_min_spend and got.expired


def _independent(coupons: list[tuple], orders: list[tuple], as_of: datetime, late: timedelta):
    """SyncResult and every coupon's state, computed with pandas from the rows as inserted."""
    import json

    c = pd.DataFrame(coupons, columns=COUPON_COLS)
    o = pd.DataFrame(orders, columns=ORDER_COLS)
    out = c[(c.state == "issued") & (c.issued_at <= as_of)]
    o = o[(o.created_at >= out.issued_at.min()) & (o.created_at <= as_of)]
    first = o.sort_values(["created_at", "amount"], ascending=[True, False], na_position="last") \
        .drop_duplicates("coupon_id").merge(out, on="coupon_id")

    def note(r) -> str:
        for field, allowed in json.loads(r.scope).items():
            if r[field] not in allowed:
                return f"out of scope: {field}={r[field] if r[field] is not None else 'NULL'}"
        if r.created_at < r.usable_from or r.created_at >= r.usable_to:
            return "outside validity"
        if r.min_spend is not None and (r.amount is None or r.amount < r.min_spend):
            return "below min spend"
        return "ok"

    notes = first.apply(note, axis=1) if len(first) else pd.Series([], dtype=object)
    expired = out[~out.coupon_id.isin(first.coupon_id) & (out.usable_to < as_of - late)]
    states = dict(zip(c.coupon_id, c.state, strict=True))
    states.update(dict.fromkeys(first.coupon_id, "redeemed"))
    states.update(dict.fromkeys(expired.coupon_id, "expired"))
    return SyncResult(redeemed=len(first), out_of_scope=int(notes.str.startswith("out of scope").sum()),
                      outside_validity=int((notes == "outside validity").sum()),
                      below_min_spend=int((notes == "below min spend").sum()), expired=len(expired),
                      already_known=int((c.state == "redeemed").sum())), states


# ------------------------------------------------------------------ caps use the real state

CAPPED = '''
campaign {name} {{
  who count(orders within 3650d) >= 1
  what coupon {code} {{
    value 10 CNY
    usable 30d after issue
  }}
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: give what, notify where
  how much
    budget 100000 CNY total
    cost push 0 CNY
    expect redemption 50%
    cap 1 unused coupons per user
}}
'''


def test_a_user_who_redeemed_gets_the_next_coupon_and_one_who_did_not_stays_capped(tmp_path, ledger):
    from runtime.context import Run
    from runtime.demo_data import make_shop
    from tests.runtime.steps import plan_for

    root = make_workspace(tmp_path / "ws", {"a.camp": CAPPED.format(name="cap_a", code="A10"),
                                            "b.camp": CAPPED.format(name="cap_b", code="B10")},
                          templates={"t/push.j2": "{{ coupon.code }}"})
    shop = f"duckdb:///{root / 'shop.duckdb'}"
    make_shop(shop, 60, seed=5)
    ws, program = program_of(root)
    source = ws.config.coupons.model_copy(update={"coupon_field": "coupon_id"}).redemptions(program.schema)
    assert source is not None

    def step(campaign: str, day: int) -> dict[str, str]:
        at = datetime(2026, 12, day, 10, 0, tzinfo=UTC) - timedelta(hours=8)
        run_engine(Run(plan_for(root, campaign, at), open_ledger(ledger), shop, at), 50)
        lg = open_ledger(ledger)
        rows = dict(lg.rows("SELECT user_id, status FROM camp_deliveries WHERE campaign = ? AND due_at = ?",
                            (campaign, at)))
        lg.close()
        return rows

    first = step("cap_a", 1)
    sent = sorted(u for u, s in first.items() if s == "sent")
    assert len(sent) >= 2
    assert set(step("cap_b", 2)[u] for u in sent) == {"suppressed"}  # everyone holds an unused A10
    lg = open_ledger(ledger)
    coupon = lg.one("SELECT coupon_id FROM camp_coupons WHERE user_id = ? AND code = 'A10'", (sent[0],))
    lg.close()
    _orders(shop, [_order(int(sent[0]), datetime(2026, 12, 2, 12, 0, tzinfo=UTC), "80", coupon)])
    lg = open_ledger(ledger)
    assert sync_coupons(lg, shop, source, datetime(2026, 12, 3, 1, 0, tzinfo=UTC)).redeemed == 1
    lg.close()
    third = step("cap_b", 3)
    assert third[sent[0]] == "sent"  # redeemed: holds nothing unused, gets B10
    assert {third[u] for u in sent[1:]} == {"suppressed"}  # still holds an unused A10


def test_every_run_syncs_before_deciding_so_the_redeemer_gets_the_next_coupon(tmp_path, prefect_api):
    """The same story through the flow `camp run` and deployments run (runtime.flows.run_step): with
    `[coupons] coupon_field` declared, no `camp sync` by hand; the run syncs first and its summary says so."""
    from runtime.demo_data import make_shop
    from tests.runtime.steps import run

    root = make_workspace(tmp_path / "ws", {"a.camp": CAPPED.format(name="cap_a", code="A10"),
                                            "b.camp": CAPPED.format(name="cap_b", code="B10")},
                          templates={"t/push.j2": "{{ coupon.code }}"},
                          toml='[coupons]\ncoupon_field = "coupon_id"\n')
    shop, ledger = f"duckdb:///{root / 'shop.duckdb'}", f"duckdb:///{root / 'ledger.duckdb'}"
    make_shop(shop, 60, seed=5)

    def step(campaign: str, day: int) -> tuple[dict[str, str], dict]:
        at = datetime(2026, 12, day, 10, 0, tzinfo=UTC) - timedelta(hours=8)
        summary = run(root, campaign, at, ledger_url=ledger, data_url=shop)
        lg = open_ledger(ledger)
        rows = dict(lg.rows("SELECT user_id, status FROM camp_deliveries WHERE campaign = ? AND due_at = ?",
                            (campaign, at)))
        lg.close()
        return rows, summary

    first, summary = step("cap_a", 1)
    assert summary["coupon_sync"]["redeemed"] == 0
    sent = sorted(u for u, s in first.items() if s == "sent")
    assert len(sent) >= 2
    assert {step("cap_b", 2)[0][u] for u in sent} == {"suppressed"}  # everyone holds an unused A10
    lg = open_ledger(ledger)
    coupon = lg.one("SELECT coupon_id FROM camp_coupons WHERE user_id = ? AND code = 'A10'", (sent[0],))
    lg.close()
    _orders(shop, [_order(int(sent[0]), datetime(2026, 12, 2, 12, 0, tzinfo=UTC), "80", coupon)])
    third, summary = step("cap_b", 3)
    assert summary["coupon_sync"]["redeemed"] == 1
    assert third[sent[0]] == "sent"  # the run saw the redemption: holds nothing unused, gets B10
    assert {third[u] for u in sent[1:]} == {"suppressed"}


def test_camp_sync_prints_the_counts_and_says_when_nothing_is_declared(tmp_path, schema):
    root = make_workspace(tmp_path / "ws", {})
    shop, ledger = root / "shop.duckdb", root / "ledger.duckdb"
    _create_shop(f"duckdb:///{shop}", schema)
    off = camp("sync", ".", "--as-of", "2026-11-20T10:00:00+08:00", cwd=root)
    assert off.returncode == 0, off.stderr
    assert "coupon_field" in off.stdout and "nothing to sync" in off.stdout
    toml = (root / "camp.toml").read_text(encoding="utf-8")
    (root / "camp.toml").write_text(toml + '[coupons]\ncoupon_field = "coupon_id"\n', encoding="utf-8")
    _issue(f"duckdb:///{ledger}", [_coupon("a", "1", T0), _coupon("b", "2", T0, days=1)])
    _orders(f"duckdb:///{shop}", [_order(1, T0 + DAY, "30", "a")])
    on = camp("sync", ".", "--as-of", "2026-11-20T10:00:00+08:00", cwd=root)
    assert on.returncode == 0, on.stderr
    lines = dict(line.strip().split(": ") for line in on.stdout.splitlines() if line.startswith("  "))
    assert lines == {
        "redeemed": "1", "out of scope": "0", "outside validity": "0", "below min spend": "0", "expired": "1",
        "already known": "0"}
    again = camp("sync", ".", "--as-of", "2026-11-20T10:00:00+08:00", "--ledger", f"duckdb:///{ledger}",
                 "--data", f"duckdb:///{Path(shop)}", cwd=root)
    assert again.returncode == 0 and "already known: 1" in again.stdout, again.stdout + again.stderr


@pytest.mark.parametrize(("coupons", "code", "line", "says"), [
    ('coupon_field = "coupon_code"', "E006", 10, "have no field `coupon_code`"),
    ('coupon_field = "coupon_id"\namount_field = "brand"', "E006", 11, "`orders.brand` is text, but it must be money"),
    ('redeemed_on = "order"\ncoupon_field = "coupon_id"', "E006", 10, "declares no events `order`"),
    ('coupon_field = "coupon_id"\nlate_data = "3 days"', "E002", 11, "not a duration"),
])
def test_camp_check_locates_what_the_schema_cannot_back(tmp_path, coupons, code, line, says):
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    root = make_workspace(tmp_path / "ws", {}, toml=f"[coupons]\n{coupons}\n")
    ws = load_workspace(root)
    assert not isinstance(ws, Diagnostic)
    found = [d for d in check_workspace(ws).diagnostics if d.code == code]
    assert [(Path(d.file).name, d.span.line) for d in found] == [("camp.toml", line)], found
    assert says in found[0].message
    ok = load_workspace(make_workspace(tmp_path / "ok", {}, toml='[coupons]\ncoupon_field = "coupon_id"\n'))
    assert not isinstance(ok, Diagnostic) and check_workspace(ok).diagnostics == []
