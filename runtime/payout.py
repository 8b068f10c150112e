"""The red packet payout rule (docs/language.md, `what`): one pure function, no I/O.

The n-th share of a user for a packet pays value x (1 - decay)^(n-1), rounded to the cent (half up), never
less than the floor, and exactly the floor from share `fixed_after` on. Without a decay every share pays the
value.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def share_payout(value: Decimal, decay: Decimal | None, floor: Decimal | None, fixed_after: int | None,
                 nth: int) -> Decimal:
    """What the `nth` share (1 for the first) pays."""
    if nth < 1:
        raise ValueError(f"shares are counted from 1, not {nth}")
    if decay is None:
        return value.quantize(CENT, ROUND_HALF_UP)
    least = floor if floor is not None else Decimal(0)
    if fixed_after is not None and nth >= fixed_after:
        return least.quantize(CENT, ROUND_HALF_UP)
    paid = (value * (Decimal(1) - decay) ** (nth - 1)).quantize(CENT, ROUND_HALF_UP)
    return max(paid, least).quantize(CENT, ROUND_HALF_UP)
