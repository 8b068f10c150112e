"""Synthetic ledgers and shops for `runtime.measure`: rows made with numpy (never through the runtime), with a
planted conversion rate for the treated and for the holdout, orders outside the goal's window that must not
count, coupons issued and redeemed, sends with a cost, clicks on the campaign's messages (and on another's, and
after the window, which must not count). `frames` returns the raw tables the tests recompute
every metric from with pandas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from runtime.ledger import open_ledger
from runtime.ledger.store import DELIVERY_COLS
from runtime.warehouse import Warehouse

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CAMPAIGN = "winback_high_value"
COUPON_COLS = ["coupon_id", "idempotency_key", "campaign", "code", "user_id", "value", "currency", "min_spend",
               "scope", "state", "reserved_at", "issued_at", "usable_from", "usable_to", "redeemed_at", "discount"]


@dataclass
class World:
    deliveries: pd.DataFrame
    coupons: pd.DataFrame
    users: pd.DataFrame
    orders: pd.DataFrame
    clicks: pd.DataFrame | None = None


def make_world(seed: int, users: int, p_treated: float, p_holdout: float, holdout: float = 0.1,
               occurrences: int = 2, arms: tuple[str | None, ...] = (None,), rich: bool = True) -> World:
    """`occurrences` daily occurrences of the campaign's `touch` step (and a `reminder` follow-up for some);
    each user in one of them. Converters order 1-3 times in [t0, t0 + 14 days); everyone may order before t0
    or after the window (noise that must not count). rich: also suppressed and failed recipients, coupons."""
    rng = np.random.default_rng(seed)
    uid = np.arange(1, users + 1)
    occ = rng.integers(0, occurrences, users)
    due = pd.to_datetime([T0 + timedelta(days=int(o)) for o in range(occurrences)], utc=True)[occ]
    held = rng.random(users) < holdout
    status = np.where(held, "holdout", "sent")
    if rich:
        r = rng.random(users)
        status = np.where(~held & (r < 0.03), "suppressed", np.where(~held & (r > 0.98), "failed", status))
    sent_at = pd.Series(due + pd.to_timedelta(rng.integers(0, 3600, users), unit="s")).where(status == "sent")
    arm = np.array(arms, dtype=object)[rng.integers(0, len(arms), users)]
    arm = np.where(held, None, arm)
    coupon = np.where((status == "sent") & (rng.random(users) < (0.5 if rich else 0)),
                      np.char.add("cp", uid.astype(str)), None)
    cost = np.where(status == "sent", Decimal("0.05"), Decimal(0))
    occ_name = np.char.add("2026-12-0", (occ + 1).astype(str))
    entry = pd.DataFrame({
        "idempotency_key": np.char.add("touch/", np.char.add(occ_name, np.char.add("/", uid.astype(str)))),
        "campaign": CAMPAIGN, "step": "touch", "occurrence": occ_name, "user_id": uid.astype(str), "arm": arm,
        "channel": np.where(status == "holdout", None, "push"), "status": status, "reason": None, "cost": cost,
        "currency": "CNY", "coupon_id": coupon, "provider_message_id": None, "plan_hash": "h", "run_id": "r",
        "exclusive_group": None, "due_at": due, "not_before": None, "decided_at": due, "sent_at": sent_at,
        "attempts": np.where(status == "sent", 1, 0), "error": None})
    # a reminder three days later for a third of those sent (its send is a cost, not a new t0)
    again = entry[(entry["status"] == "sent") & (rng.random(users) < 0.33)].copy()
    again["idempotency_key"] = "reminder/" + again["idempotency_key"]
    again["step"], again["coupon_id"], again["cost"] = "reminder", None, Decimal("0.10")
    again["due_at"] = again["due_at"] + pd.Timedelta(days=3)
    again["sent_at"], again["decided_at"] = again["due_at"], again["due_at"]
    deliveries = pd.concat([entry, again], ignore_index=True)[DELIVERY_COLS]

    t0 = pd.Series(sent_at).fillna(pd.Series(due)).reset_index(drop=True)
    converts = rng.random(users) < np.where(held, p_holdout, p_treated)
    n_orders = np.where(converts, rng.integers(1, 4, users), 0)
    who = np.repeat(np.arange(users), n_orders)
    at = t0.iloc[who].reset_index(drop=True) + pd.to_timedelta(rng.integers(0, 14 * 86400, len(who)), unit="s")
    noise_who = rng.integers(0, users, users // 2)
    k = rng.integers(0, 5 * 86400, len(noise_who))
    before = rng.random(len(noise_who)) < 0.5  # a second or more before t0, or at the window's end and later
    noise_at = t0.iloc[noise_who].reset_index(drop=True) + pd.to_timedelta(
        np.where(before, -1 - k, 14 * 86400 + k), unit="s")
    everyone = np.concatenate([who, noise_who])
    amounts = (rng.integers(1000, 50000, len(everyone)) / 100).round(2)
    orders = pd.DataFrame({"user_id": uid[everyone], "created_at": pd.concat([at, noise_at], ignore_index=True),
                           "amount": [Decimal(f"{a:.2f}") for a in amounts]})
    given = entry[entry["coupon_id"].notna()]
    redeemed = rng.random(len(given)) < 0.3
    coupons = pd.DataFrame({
        "coupon_id": given["coupon_id"].to_numpy(), "idempotency_key": "k/" + given["coupon_id"],
        "campaign": CAMPAIGN, "code": "HIGHEND20", "user_id": given["user_id"].to_numpy(), "value": Decimal(20),
        "currency": "CNY", "min_spend": Decimal(200), "scope": "{}",
        "state": np.where(redeemed, "redeemed", "issued"), "reserved_at": given["sent_at"].to_numpy(),
        "issued_at": given["sent_at"].to_numpy(), "usable_from": given["sent_at"].to_numpy(),
        "usable_to": (given["sent_at"] + pd.Timedelta(days=7)).to_numpy(),
        "redeemed_at": pd.Series(given["sent_at"] + pd.Timedelta(days=2)).where(redeemed).to_numpy(),
        "discount": np.where(redeemed, Decimal(20), None)})
    clicks = _clicks(rng, entry, t0) if rich else None
    return World(deliveries, coupons, pd.DataFrame({"user_id": uid}), orders, clicks)


def _clicks(rng: np.random.Generator, entry: pd.DataFrame, t0: pd.Series) -> pd.DataFrame:
    """Clicks: a fifth of the users sent click this campaign's message 1-2 times within 20 days of t0 (some after
    the 14-day window); some users, held out or not, click another campaign's message."""
    sent = np.flatnonzero((entry["status"] == "sent").to_numpy() & (rng.random(len(entry)) < 0.2))
    times = rng.integers(1, 3, len(sent))
    who = np.repeat(sent, times)
    other = rng.integers(0, len(entry), len(entry) // 10)
    everyone = np.concatenate([who, other])
    at = t0.iloc[everyone].reset_index(drop=True) + pd.to_timedelta(rng.integers(0, 20 * 86400, len(everyone)),
                                                                     unit="s")
    campaign = np.where(np.arange(len(everyone)) < len(who), CAMPAIGN, "another_campaign")
    return pd.DataFrame({"user_id": entry["user_id"].to_numpy()[everyone].astype(np.int64), "clicked_at": at,
                         "click_id": [f"c{i}" for i in range(len(everyone))], "campaign": campaign,
                         "channel": "push"})


def load_world(world: World, ledger_url: str, wh: Warehouse):
    """The world's ledger rows at `ledger_url` (migrated) and shop rows in `wh` (its tables created)."""
    lg = open_ledger(ledger_url)
    lg.bulk_insert("camp_deliveries", DELIVERY_COLS, world.deliveries)
    if len(world.coupons):
        lg.bulk_insert("camp_coupons", COUPON_COLS, world.coupons[COUPON_COLS])
    wh.bulk_insert("users", ["user_id"], world.users)
    wh.bulk_insert("orders", ["user_id", "created_at", "amount"], world.orders)
    if world.clicks is not None and len(world.clicks):
        wh.bulk_insert("clicks", list(world.clicks.columns), world.clicks)
    return lg
