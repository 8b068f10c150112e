"""`redeemed(CODE)` end to end, on DuckDB and PostgreSQL (ledger and warehouse on the same engine): a campaign
gives X10 at `touch`, reminds after 3d `unless redeemed(X10)` and audiences `not redeemed(X10)`; orders carry
the issued coupon ids, `camp sync` marks them redeemed, and each later run reads exactly those redemptions that
are of this campaign, made by its as-of time and, in a follow-up, issued in the same journey."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from compiler.plan import StepPlan
from compiler.step_plan import build_plan
from runtime.context import Run
from runtime.coupon_sync import sync_coupons
from runtime.ledger import open_ledger
from runtime.warehouse import connect, create_tables
from tests.runtime.conftest import camp, make_workspace, pg_schema
from tests.runtime.steps import plan_for, program_of, run_engine

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 12, 1, 10, 0, tzinfo=SH)  # the first touch
D = timedelta(days=1)
USERS = range(1, 7)
CAMPAIGN = """
campaign rd {
  who member_level = "normal" and not redeemed(X10)
  what coupon X10 { value 10 CNY  usable 7d after issue }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step touch: give what, notify where
    step remind after 3d unless redeemed(X10): notify where
}
"""
ORDER_COLS = ["user_id", "created_at", "amount", "coupon_used", "coupon_id"]


@pytest.fixture(params=["duckdb", "postgres"])
def world(request, tmp_path):
    """(workspace, ledger URL, warehouse URL) with six normal members who consent to push."""
    root = make_workspace(tmp_path / "ws", {"rd.camp": CAMPAIGN}, templates={"t/push.j2": "{{ coupon.code }}"},
                          toml='[coupons]\ncoupon_field = "coupon_id"\n')
    if request.param == "duckdb":
        yield from _filled(root, f"duckdb:///{root / 'ledger.duckdb'}", f"duckdb:///{root / 'shop.duckdb'}")
        return
    with pg_schema(f"camp_rd_l_{os.getpid()}") as ledger, pg_schema(f"camp_rd_w_{os.getpid()}") as shop:
        yield from _filled(root, ledger, shop)


def _filled(root, ledger: str, shop: str):
    wh = connect(shop)
    create_tables(wh, program_of(root)[1].schema)
    wh.insert("users", ["user_id", "member_level", "timezone"], [(u, "normal", "Asia/Shanghai") for u in USERS])
    wh.insert("consent", ["user_id", "channel"], [(u, "push") for u in USERS])
    wh.close()
    yield root, ledger, shop


def _run(world, at: datetime, step: str | None = None, occurrence: str | None = None) -> dict[int, tuple]:
    root, ledger, shop = world
    if step is None:
        plan = plan_for(root, "rd", at)
    else:
        ws, program = program_of(root)
        plan = build_plan(program, program.campaigns["rd"], at, "duckdb", ws.template_dir, step,
                          ws.config.workspace.name, occurrence=occurrence)
    assert plan.redeemed == ["X10"]  # the runtime is told to fill camp_redeemed
    plan = StepPlan.model_validate(plan.model_dump(mode="json"))  # as a flow receives it
    assert plan.redeemed == ["X10"]
    run_engine(Run(plan, open_ledger(ledger), shop, at), 50)
    lg = open_ledger(ledger)
    try:
        return {int(u): (s, r) for u, s, r in lg.rows(
            "SELECT user_id, status, reason FROM camp_deliveries WHERE step = ? AND occurrence = ?",
            (plan.step, plan.occurrence))}
    finally:
        lg.close()


def _audience(root, at: datetime, env: dict[str, str]) -> dict[str, int]:
    out = camp("audience", "rd.camp", "--as-of", at.astimezone(UTC).isoformat(), cwd=root, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    words = [line.split() for line in out.stdout.splitlines()]
    counts = [(w[0], int(w[1].replace(",", ""))) for w in words if w and w[0] in ("matched", "final")]
    assert len({n for _, n in counts[::2]}) == 1 and len(counts) == 2 * out.stdout.count("campaign rd")
    return dict(counts)


def _coupons(ledger: str) -> dict[tuple[str, int], str]:
    """(occurrence, user) -> coupon id of the X10 issued then."""
    lg = open_ledger(ledger)
    try:
        return {(o, int(u)): c for o, u, c in lg.rows(
            "SELECT d.occurrence, c.user_id, c.coupon_id FROM camp_coupons c JOIN camp_deliveries d "
            "ON d.idempotency_key = c.idempotency_key")}
    finally:
        lg.close()


def _order(world, user: int, at: datetime, coupon: str | None) -> None:
    wh = connect(world[2])
    wh.insert("orders", ORDER_COLS, [(user, at, 50, coupon is not None, coupon)])
    wh.close()


def _sync(world, at: datetime) -> int:
    root, ledger, shop = world
    ws, program = program_of(root)
    source = ws.config.coupons.redemptions(program.schema)
    assert source is not None
    lg = open_ledger(ledger)
    try:
        return sync_coupons(lg, shop, source, at).redeemed
    finally:
        lg.close()


def test_a_reminder_skips_those_who_redeemed_in_this_journey_and_the_audience_leaves_them_out(world):
    first = _run(world, T)
    assert first == {u: ("sent", None) for u in USERS}  # nobody has redeemed anything yet
    occ1 = plan_for(world[0], "rd", T).occurrence
    issued = _coupons(world[1])
    _order(world, 1, T + D, issued[occ1, 1])
    _order(world, 2, T + D + timedelta(hours=1), issued[occ1, 2])
    _order(world, 5, T + D, None)  # an order without the coupon is no redemption
    _order(world, 3, T + 3 * D + timedelta(hours=12), issued[occ1, 3])  # after the reminder
    assert _sync(world, T + 2 * D) == 2

    remind = _run(world, T + 3 * D, "remind", occ1)
    assert remind == {1: ("skipped", "unless"), 2: ("skipped", "unless"),
                      **{u: ("sent", None) for u in (3, 4, 5, 6)}}

    lg = open_ledger(world[1])
    try:  # what the runtime puts in camp_redeemed: this campaign, by the as-of time, in a follow-up this journey
        assert lg.redeemed_pairs("rd", ["X10"], T + 3 * D) == [("1", "X10"), ("2", "X10")]
        assert lg.redeemed_pairs("rd", ["X10"], T + 3 * D, occ1) == [("1", "X10"), ("2", "X10")]
        assert lg.redeemed_pairs("rd", ["X10"], T + 3 * D, "2026-11-30T02:00Z") == []  # another journey
        # by the order's time, not the sync's: a late-synced order placed before the as-of time counts
        assert lg.redeemed_pairs("rd", ["X10"], T + D - timedelta(seconds=1)) == []  # not ordered yet
        assert lg.redeemed_pairs("rd", ["X10"], T + D) == [("1", "X10")]
        assert lg.redeemed_pairs("rd", ["Y10"], T + 3 * D) == [] and lg.redeemed_pairs("other", ["X10"], T + 3 * D) == []
    finally:
        lg.close()

    assert _audience(world[0], T + 3 * D, {"CAMP_LEDGER_URL": world[1], "CAMP_DATA_URL": world[2]}) == \
        {"matched": 4, "final": 4}  # `camp audience` reads the same redemptions
    second = _run(world, T + 3 * D)  # the next occurrence: `not redeemed(X10)` leaves users 1 and 2 out
    assert set(second) == {3, 4, 5, 6}  # (who all still hold an unused X10: the coupon rule suppresses them)


def test_camp_audience_without_a_ledger_reads_nobody_as_redeemed(tmp_path):
    twice = CAMPAIGN + CAMPAIGN.replace("campaign rd", "campaign rd_2")  # one session, the table filled twice
    root = make_workspace(tmp_path / "ws", {"rd.camp": twice}, templates={"t/push.j2": "{{ coupon.code }}"})
    wh = connect(f"duckdb:///{root / 'shop.duckdb'}")
    create_tables(wh, program_of(root)[1].schema)
    wh.insert("users", ["user_id", "member_level"], [(u, "normal") for u in USERS])
    wh.close()
    assert _audience(root, T, {}) == {"matched": 6, "final": 6}
    assert not (root / "ledger.duckdb").exists()  # `camp audience` created no ledger
