"""After runs, the demo shop's response: the next days of orders, with a planted effect per campaign, so that
`camp sync` and `camp report` have something true to find.

    respond(wh, exposures, coupons, users, days, seed, effects, windows, organic, redeem, arms) -> Responded

Who converts is planted, not simulated: each exposure (a user of a campaign's occurrence, from the ledger)
converts with the campaign's planted rate, `treated` for users the campaign sent to and `holdout` for everyone
else it decided on (the holdout, and those it could not reach: they behave as if untouched). An arm's own
rates (`arms`, by campaign and A/B variant or branch of the entry delivery) replace the campaign's for the users
of that arm; the holdout has no arm and keeps the campaign's. A converter orders
once, at a uniformly drawn time inside both the goal's window and the response days, so a report read after the
window ends sees the planted rates (within sampling error). A treated converter who holds an issued coupon of
the campaign redeems it with probability `redeem`: the order carries the coupon's id, spends at least its
minimum, lies in its first allowed category / shop / city value and inside its validity. Users no campaign
touched order organically at `organic` over the days. Every draw is a hash of (seed, campaign, occurrence,
user): the same seed gives the same orders, whatever the row order.

The orders written are listed in `camp_demo_responses` (user_id, created_at) of the warehouse; a second call
first removes the orders the first wrote, so responding again replaces, never adds.

The planted effect acts on orders: a goal on other events (visits, shares) or on orders of one brand reads the
orders as they fall.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.util.hashing import hash_pandas_object

from runtime.warehouse import Warehouse

MARK = "camp_demo_responses"  # (user_id, created_at) of the orders a response wrote
ORDER_COLS = ["user_id", "created_at", "amount", "brand", "category", "shop", "coupon_used", "coupon_id"]
_BRANDS = ["Lancome", "Estee Lauder", "Shiseido", "SK-II", "Uniqlo", "Nike"]
_CATS = ["beauty", "apparel", "shoes", "home"]
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Effect:
    """The planted conversion rates of a campaign over its goal window (fractions)."""

    treated: Decimal
    holdout: Decimal


@dataclass(frozen=True)
class Responded:
    orders: int  # orders written
    converted: dict[str, tuple[int, int, int, int]]  # campaign -> (treated, treated converters, others, converters)
    by_arm: dict[tuple[str, str], tuple[int, int, int, int]]  # (campaign, arm): the same; arm '': no arm
    redeemed: int  # orders that carry a coupon id
    organic: int  # orders of users no campaign touched
    start: datetime | None
    end: datetime | None


def _uniform(keys: Any, seed: int, salt: str) -> np.ndarray:
    """A deterministic uniform draw in [0, 1) per key."""
    hashed = hash_pandas_object(keys + f"/{salt}", index=False, hash_key=f"{seed:016d}"[-16:])
    return (hashed.to_numpy(dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _amounts(u: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Order amounts from 30 to 530, at least `floor` + 10 where a coupon's minimum spend applies; cents."""
    base = np.round(30 + 500 * u, 2)
    return np.maximum(base, floor + 10)


def respond(wh: Warehouse, exposures: pd.DataFrame, coupons: pd.DataFrame, users: Any, days: int, seed: int,
            effects: dict[str, Effect], windows: dict[str, timedelta], organic: Decimal,
            redeem: Decimal, arms: dict[tuple[str, str], Effect] | None = None) -> Responded:
    """`exposures`: (campaign, occurrence, user_id, sent, t0[, arm]) one row per user and occurrence; `coupons`:
    issued coupons (coupon_id, campaign, occurrence, user_id, min_spend, scope, usable_from, usable_to); `users`:
    every user id of the shop; `windows`: each campaign's goal window (a campaign without a goal gets `days`);
    `arms`: (campaign, arm) -> that arm's rates over the campaign's."""
    arms = arms or {}
    _forget(wh)
    span = timedelta(days=days)
    out: list[Any] = []
    converted: dict[str, tuple[int, int, int, int]] = {}
    by_arm: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    redeemed = 0
    ex: Any = exposures.copy()
    if not ex.empty:
        ex["t0"] = pd.to_datetime(ex["t0"], utc=True)
        ex["key"] = ex["campaign"] + "/" + ex["occurrence"].astype(str) + "/" + ex["user_id"].astype(str)
        sent = ex["sent"].astype(bool).to_numpy()
        ex["arm"] = ex["arm"].fillna("").astype(str) if "arm" in ex.columns else ""
        planted = [arms.get((c, a), effects[c]) for c, a in zip(ex["campaign"], ex["arm"], strict=True)]
        treated = np.array([float(e.treated) for e in planted])
        held = np.array([float(e.holdout) for e in planted])
        conv = _uniform(ex["key"], seed, "convert") < np.where(sent, treated, held)
        reach = np.array([min(windows.get(c, span), span) for c in ex["campaign"]], dtype="timedelta64[us]")
        # inside the window with an hour to spare at each end (a wall-clock window moves by an hour across DST)
        room = np.maximum(reach - np.timedelta64(2, "h"), np.timedelta64(0, "s")).astype(np.int64)
        offset = (_uniform(ex["key"], seed, "when") * room).astype(np.int64).astype("timedelta64[us]")
        ex["at"] = ex["t0"] + pd.to_timedelta(offset + np.timedelta64(1, "h"))
        ex["conv"] = conv
        for c, g in ex.groupby("campaign"):
            converted[str(c)] = _counts(g)
        for (c, a), g in ex.groupby(["campaign", "arm"]):
            by_arm[(str(c), str(a))] = _counts(g)
        buyers: Any = _with_coupons(ex[ex["conv"]].copy(), coupons, seed, redeem)
        redeemed = int(buyers["coupon_id"].notna().sum())
        out.append(buyers[ORDER_COLS])
    start = ex["t0"].min() if not ex.empty else None
    touched = set(ex["user_id"].astype(str)) if not ex.empty else set()
    others = users[~users.astype(str).isin(touched)].astype(str).reset_index(drop=True)
    first = start if start is not None else pd.Timestamp.now(tz="UTC").floor("h")
    buy = _uniform(others, seed, "organic") < float(organic)
    quiet = others[buy].reset_index(drop=True)
    if len(quiet):
        at = first + pd.to_timedelta((_uniform(quiet, seed, "organic-when") * span.total_seconds()).astype(np.int64),
                                     unit="s")
        out.append(_orders(quiet, at, np.zeros(len(quiet)), seed, None))
    orders: Any = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=ORDER_COLS)
    orders["user_id"] = orders["user_id"].astype(np.int64)
    if len(orders):
        wh.bulk_insert("orders", ORDER_COLS, orders[ORDER_COLS])
        wh.bulk_insert(MARK, ["user_id", "created_at"], orders[["user_id", "created_at"]])
    end = orders["created_at"].max() if len(orders) else None
    return Responded(orders=len(orders), converted=converted, by_arm=by_arm, redeemed=redeemed, organic=int(len(quiet)),
                     start=None if start is None else start.to_pydatetime(),
                     end=None if end is None else datetime.fromisoformat(pd.Timestamp(end).isoformat()))


def _counts(g: Any) -> tuple[int, int, int, int]:
    s = g["sent"].astype(bool)
    return int(s.sum()), int((g["conv"] & s).sum()), int((~s).sum()), int((g["conv"] & ~s).sum())


def _with_coupons(buyers: Any, coupons: pd.DataFrame, seed: int, redeem: Decimal) -> pd.DataFrame:
    """The converters' orders; a treated converter holding an issued coupon of that occurrence redeems it with
    probability `redeem` (the order placed inside the coupon's validity)."""
    buyers = buyers.assign(user_id=buyers["user_id"].astype(str), occurrence=buyers["occurrence"].astype(str))
    if coupons.empty:
        held = buyers.assign(coupon_id=None, min_spend=None, scope=None, usable_from=pd.NaT, usable_to=pd.NaT)
    else:
        first = coupons.assign(user_id=coupons["user_id"].astype(str), occurrence=coupons["occurrence"].astype(str)) \
            .sort_values("coupon_id").drop_duplicates(["campaign", "occurrence", "user_id"])
        held = buyers.merge(first, on=["campaign", "occurrence", "user_id"], how="left")
    uses = held["coupon_id"].notna() & held["sent"].astype(bool) & \
        (_uniform(held["key"], seed, "redeem") < float(redeem))
    held: Any = held
    held.loc[~uses, "coupon_id"] = None
    at = held["at"].copy()
    if uses.any():
        lo = pd.to_datetime(held.loc[uses, "usable_from"], utc=True) + _HOUR
        hi = pd.to_datetime(held.loc[uses, "usable_to"], utc=True) - _HOUR
        at.loc[uses] = at.loc[uses].clip(lower=lo, upper=hi)
    spend_text: Any = pd.to_numeric(held["min_spend"], errors="coerce")
    spend = np.nan_to_num(np.asarray(spend_text, dtype=np.float64), nan=0.0)
    floor = np.where(uses.to_numpy(), spend, 0.0)
    return _orders(held["user_id"], at, floor, seed, held["scope"].where(uses), held["coupon_id"], held["key"])


def _orders(users: Any, at: Any, floor: np.ndarray, seed: int, scopes: Any,
            coupon_ids: Any = None, keys: Any = None) -> pd.DataFrame:
    keys = users.astype(str) if keys is None else keys
    u = _uniform(keys, seed, "amount")
    frame = pd.DataFrame({
        "user_id": users.to_numpy(), "created_at": pd.to_datetime(at, utc=True).to_numpy(),
        "amount": _amounts(u, floor), "brand": _pick(_BRANDS, _uniform(keys, seed, "b")),
        "category": _pick(_CATS, _uniform(keys, seed, "c")),
        "shop": _pick([f"shop_{i}" for i in range(12)], _uniform(keys, seed, "s")),
        "coupon_used": False if coupon_ids is None else coupon_ids.notna().to_numpy(),
        "coupon_id": None if coupon_ids is None else coupon_ids.to_numpy()})
    if scopes is not None:  # a redeeming order keeps to its coupon's scope: the first allowed value of each field
        texts = pd.Series(scopes).reset_index(drop=True)
        for text in texts.dropna().unique():  # a few distinct scopes: one per campaign's code
            if not text:
                continue
            rows = (texts == text).to_numpy()
            for field, values in json.loads(text).items():
                if field in frame.columns and values:
                    frame.loc[rows, field] = str(values[0])
    frame["amount"] = [Decimal(f"{a:.2f}") for a in frame["amount"]]
    return frame


def _pick(values: list[str], u: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[(u * len(values)).astype(np.int64)]


def _forget(wh: Warehouse) -> None:
    """Remove what an earlier response wrote, so responding again replaces it."""
    wh.execute(f"CREATE TABLE IF NOT EXISTS {MARK} (user_id bigint, created_at timestamptz)")
    wh.execute(f"DELETE FROM orders WHERE EXISTS (SELECT 1 FROM {MARK} m WHERE m.user_id = orders.user_id "
               "AND m.created_at = orders.created_at)")
    wh.execute(f"DELETE FROM {MARK}")
