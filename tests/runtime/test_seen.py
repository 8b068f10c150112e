"""Differential property: the caps and exclusive hold counted by the ledger in one aggregate
(`runtime.history.seen_counts`, what runtime.batch decides with) give the same decision for every user as the
per-recipient path deciding from each counted delivery row (`decide` with a list of `Past`), on generated
histories, caps (windowed, all-time, per channel, per campaign, tiered) and exclusive holds, on DuckDB and on
PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.plan import Duration
from runtime.context import RunContext
from runtime.decide import NOTHING_SEEN, Budget, Past, Recipient, decide
from runtime.history import past_deliveries, seen_counts
from runtime.ledger import open_ledger
from runtime.ledger.connection import MANY
from runtime.ledger.status import COUNTED, Status
from runtime.ledger.store import DELIVERY_COLS
from tests.profiles import examples
from tests.runtime.conftest import pg_schema
from tests.runtime.test_decide import NOW, cap, plan

USERS = [f"u{i}" for i in range(6)]
CAMPAIGNS = ["c", "a", "b"]  # "c" is the plan's own campaign

caps = st.one_of(
    st.builds(lambda unit, n, days, scope: cap(unit, n, days, scope=scope),
              st.sampled_from(["message", "push", "sms"]), st.integers(0, 3), st.none() | st.integers(1, 10),
              st.sampled_from(["campaign", "policy"])),
    st.builds(lambda unit, days, hi, lo, default: cap(unit, 0, days, by="engagement", tiers={"high": hi, "low": lo},
                                                      default=default),
              st.sampled_from(["message", "push"]), st.integers(1, 10), st.integers(0, 3), st.integers(0, 2),
              st.none() | st.integers(0, 3)),
)
hours = st.integers(-48, 400) | st.integers(-1, 10).map(lambda d: 24 * d)  # window edges are whole days: hit them
rows = st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(CAMPAIGNS), st.sampled_from([None, "push", "sms"]),
                          hours, st.sampled_from([None, "g", "h"]), st.sampled_from(list(Status))), max_size=40)
people = st.lists(st.tuples(st.sampled_from([("push", "sms"), ("push",), ("sms",), ()]),
                            st.sampled_from([None, "high", "low", "other"])), min_size=len(USERS),
                  max_size=len(USERS))


@pytest.fixture(params=["duckdb", "postgres"])
def url(request, tmp_path):
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ledger.duckdb'}"
        return
    with pg_schema(f"camp_seen_{os.getpid()}") as u:
        yield u


def test_counted_in_sql_decides_as_the_rows_do(url):
    lg = open_ledger(url)
    try:
        _property(lg)
    finally:
        lg.close()


def _property(lg) -> None:
    @settings(max_examples=examples(150))
    @given(st.lists(caps, max_size=3), st.none() | st.integers(1, 10), rows, people)
    def check(cap_list, hold_days, history, who):
        extra = {"exclusive": "g", "exclusive_hold": Duration(value=hold_days, unit="d")} if hold_days else {}
        p = plan(caps=cap_list, labels=["engagement"], **extra)
        ctx = RunContext(p, lg, "", NOW, False, "run", "hash")
        lg.execute("DELETE FROM camp_deliveries")
        lg.bulk_insert("camp_deliveries", DELIVERY_COLS, [
            (f"k{i}", camp, "s", "o", user, None, channel, status, None, Decimal(0), "CNY", None, None, "h", "r",
             group, NOW - timedelta(hours=hours), None, NOW, None, 0, None)
            for i, (user, camp, channel, hours, group, status) in enumerate(history)])
        counted = {u: [Past(camp, channel, NOW - timedelta(hours=hours), group)
                       for user, camp, channel, hours, group, status in history if user == u and status in COUNTED]
                   for u in USERS}
        read = {u: [] for u in USERS}  # what the per-batch read of the old path gave each user
        for _, uid, d in past_deliveries(ctx, USERS, NOW):
            read[uid].append(d)
        lg.execute("DELETE FROM camp_recipients")
        snapshot = USERS[1:5]  # the run's recipients in the ledger (`snapshot=True`: only theirs are counted)
        lg.bulk_insert("camp_recipients", ["campaign", "step", "occurrence", "seq", "user_id", "held_out", "data"],
                       [(*ctx.occ, i, u, False, "{}") for i, u in enumerate(snapshot)])
        lg.bulk_insert("camp_recipients", ["campaign", "step", "occurrence", "seq", "user_id", "held_out", "data"],
                       [(*ctx.occ[:2], "another", 0, USERS[0], False, "{}")])  # another occurrence's: not read
        # over MANY users they go to the query as a TEMP table, not a list parameter: the same counts and rows
        many = USERS[2:5] + [f"x{i}" for i in range(MANY)]
        read_many: dict[str, list] = {}
        for _, uid, d in past_deliveries(ctx, many, NOW):
            read_many.setdefault(uid, []).append(d)
        assert {u: sorted(map(repr, ds)) for u, ds in read_many.items()} == \
            {u: sorted(map(repr, read[u])) for u in USERS[2:5] if read[u]}
        for everyone, only in ((None, False), (USERS[:3], False), (many, False), (None, True)):
            seen = seen_counts(ctx, everyone, NOW, snapshot=only)
            if only:
                assert set(seen) <= set(snapshot)
            for n, (u, (consent, label)) in enumerate(zip(USERS, who, strict=True)):
                if (everyone is not None and u not in everyone) or (only and u not in snapshot):
                    continue
                r = Recipient(n, u, False, {"timezone": None}, {"engagement": label} if label else {},
                              {c: True for c in consent})
                want = decide(p, r, counted[u], [], Budget(None, None), NOW)
                assert decide(p, r, read[u], [], Budget(None, None), NOW) == want
                assert decide(p, r, seen.get(u, NOTHING_SEEN), [], Budget(None, None), NOW) == want, (u, seen.get(u))

    check()


def test_the_run_reads_the_counts_once_on_duckdb_and_per_batch_on_postgres(url):
    """Where one process writes the ledger the first batch reads every user's counts; where several meet each batch
    reads its own users' (a concurrent run's deliveries are seen)."""
    lg = open_ledger(url)
    try:
        assert lg.backend.one_writer == url.startswith("duckdb")
    finally:
        lg.close()


def test_an_all_time_cap_beside_a_windowed_one_counts_every_delivery(url):
    """`cap 2 messages per user` (no window) beside `cap 5 messages per user per 7d`: the read reaches back to the
    beginning (the per-batch read once cut it at the 7-day window)."""
    lg = open_ledger(url)
    try:
        p = plan(caps=[cap("message", 5, 7), cap("message", 2)])
        ctx = RunContext(p, lg, "", NOW, False, "run", "hash")
        lg.bulk_insert("camp_deliveries", DELIVERY_COLS, [
            (f"k{i}", "a", "s", "o", "u0", None, "push", Status.SENT, None, Decimal(0), "CNY", None, None, "h", "r",
             None, NOW - timedelta(days=30 + i), None, NOW, None, 0, None) for i in range(2)])
        r = Recipient(0, "u0", False, {"timezone": None}, {}, {"push": True, "sms": True})
        d = decide(p, r, seen_counts(ctx, None, NOW).get("u0", NOTHING_SEEN), [], Budget(None, None), NOW)
        assert (d.status, d.reason) == ("suppressed", "cap:message 2; cap:message 2")
        assert len(past_deliveries(ctx, ["u0"], datetime(2026, 12, 1, tzinfo=UTC))) == 2
    finally:
        lg.close()
