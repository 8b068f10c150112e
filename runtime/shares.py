"""Share events -> red packet payouts in the ledger, one row per share event id (paid or refused), never twice.

A share pays for the user's latest red packet granted at or before the share (that packet's when the event
names one). Every share of that grant counts: the n-th pays `runtime.payout.share_payout`. The grant reserved
its forecast when it was decided (value x expected redemption); a payout draws on that reservation first, and
only what goes beyond it is added to the campaign's spend: refused (`budget:total` / `budget:daily DAY`) when
that would exceed the campaign's budget, so actual payouts never exceed it. Shares are taken in the order they
were made (time, then id), all in one locked ledger transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from runtime.decide import Budget
from runtime.ledger import Ledger
from runtime.ledger.status import ShareState
from runtime.payout import share_payout


@dataclass(frozen=True)
class Share:
    share_id: str  # the event's id: a share recorded once whatever replays it
    user_id: str
    shared_at: datetime
    packet: str | None = None


@dataclass(frozen=True)
class PacketBudget:
    """A campaign's budget (None: no limit) and the zone its days are counted in."""

    total: Decimal | None
    daily: Decimal | None
    timezone: str


@dataclass(frozen=True)
class Payout:
    share_id: str
    user_id: str
    nth: int
    amount: Decimal
    state: ShareState
    reason: str | None
    campaign: str | None


TOO_LATE = "late: beyond the late-data allowance"  # the reason of a share refused for reaching the warehouse too late


def pay_shares(ledger: Ledger, shares: list[Share], budgets: dict[str, PacketBudget],
               too_late: datetime | None = None) -> list[Payout]:
    """Record the payouts of the shares the ledger does not know yet; returns them (known ones are skipped).
    too_late: shares made before it are recorded refused (`TOO_LATE`), never paid (runtime.share_sync)."""
    out: list[Payout] = []
    now = datetime.now(UTC)
    with ledger.decision():
        known = ledger.known_shares([s.share_id for s in shares])
        for s in sorted(shares, key=lambda s: (s.shared_at, s.share_id)):
            if s.share_id in known:
                continue
            known.add(s.share_id)
            if too_late is not None and s.shared_at < too_late:
                ledger.add_share((s.share_id, None, None, s.packet, s.user_id, 0, Decimal(0), None,
                                  ShareState.REFUSED, TOO_LATE, Decimal(0), s.shared_at, now))
                out.append(Payout(s.share_id, s.user_id, 0, Decimal(0), ShareState.REFUSED, TOO_LATE, None))
                continue
            out.append(_pay(ledger, s, budgets, now))
    return out


def _pay(ledger: Ledger, s: Share, budgets: dict[str, PacketBudget], now: datetime) -> Payout:
    grant = ledger.packet_grant(s.user_id, s.packet, s.shared_at)
    if grant is None:
        why = f"no red packet {s.packet} granted" if s.packet else "no red packet granted"
        ledger.add_share((s.share_id, None, None, s.packet, s.user_id, 0, Decimal(0), None, ShareState.REFUSED,
                          why, Decimal(0), s.shared_at, now))
        return Payout(s.share_id, s.user_id, 0, Decimal(0), ShareState.REFUSED, why, None)
    before, paid = ledger.grant_shares(grant.idempotency_key)
    nth = before + 1
    amount = share_payout(grant.value, grant.decay, grant.floor, grant.fixed_after, nth)
    # beyond the grant's reservation only: max(0, paid + amount - reserved) - max(0, paid - reserved)
    extra = max(Decimal(0), paid + amount - grant.reserved) - max(Decimal(0), paid - grant.reserved)
    b = budgets.get(grant.campaign)
    reason = None
    if b is not None and extra > 0:
        day = s.shared_at.astimezone(ZoneInfo(b.timezone)).date()
        reason = Budget(b.total, b.daily, before=ledger.spend(grant.campaign)).reserve(day, extra)
        if reason is None:
            ledger.add_spend(grant.campaign, day, extra)
    elif b is None and extra > 0:
        reason = "budget:unknown campaign"  # a grant of a campaign no longer in the workspace: never overspend
    state = ShareState.REFUSED if reason else ShareState.PAID
    ledger.add_share((s.share_id, grant.idempotency_key, grant.campaign, grant.packet, s.user_id, nth, amount,
                      grant.currency, state, reason, extra if state == ShareState.PAID else Decimal(0), s.shared_at,
                      now))
    return Payout(s.share_id, s.user_id, nth, amount, state, reason, grant.campaign)
