"""Redeemed coupon discounts per local day + the forecast their coupons reserved -> the actual spend beyond the
forecast, per local day (no I/O here; runtime.history reads the ledger).

The rule (docs/runtime.md, "Budgets: forecast and actual"): per coupon code, the forecast its coupons reserved
(value x expected redemption, over every coupon of the code not void) absorbs the redeemed discounts in the order
of their local days. A day's excess is what its discounts take beyond what is left of that forecast:

    excess(day) = max(0, C(day) - F) - max(0, C(day before) - F)

with C(day) the code's discounts redeemed up to and including that day, and F its forecast. The excesses are
never negative, and their sum over the days is max(0, C(last day) - F): exactly the code's total excess, so the
daily view and the total view hold the same money once, never twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


def excess_by_day(forecasts: dict[str, Decimal], redeemed: Iterable[tuple[str, date, Decimal]]) -> dict[date, Decimal]:
    """forecasts: code -> the forecast its coupons reserved; redeemed: (code, local day, discounts redeemed that
    day), a code's day at most once or several times (summed). Returns local day -> excess, days with some only."""
    out: dict[date, Decimal] = {}
    taken: dict[str, Decimal] = {}
    for code, day, discounts in sorted(redeemed):
        forecast = forecasts.get(code, ZERO)
        before = taken.get(code, ZERO)
        taken[code] = before + discounts
        extra = max(ZERO, taken[code] - forecast) - max(ZERO, before - forecast)
        if extra > 0:
            out[day] = out.get(day, ZERO) + extra
    return out
