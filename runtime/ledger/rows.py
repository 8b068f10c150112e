"""Typed rows of the ledger's named queries (NamedTuples: built straight from a driver's tuples, field
names instead of indexes, `_asdict()` in column order for JSON)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class RunRow(NamedTuple):
    """A `camp_runs` row as `camp runs` shows it."""

    run_id: str
    campaign: str
    step: str
    occurrence: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    plan_hash: str
    summary: str | None  # JSON text


class DeliveryRow(NamedTuple):
    """A `camp_deliveries` row as `camp ledger` shows it."""

    campaign: str
    step: str
    occurrence: str
    user_id: str
    arm: str | None
    channel: str | None
    status: str
    reason: str | None
    cost: Decimal
    coupon_id: str | None
    provider_message_id: str | None
    plan_hash: str
    due_at: datetime
    sent_at: datetime | None


class SentAt(NamedTuple):
    """A send of a journey step that a follow-up has not yet taken: its occurrence and due time."""

    occurrence: str
    due_at: datetime


class RecipientRow(NamedTuple):
    """One user of an occurrence's snapshot (`camp_recipients`); data is the JSON of their columns."""

    seq: int
    user_id: str
    held_out: bool
    data: str


class CountedRow(NamedTuple):
    """A delivery that counts against caps and exclusive holds (any campaign)."""

    idempotency_key: str
    user_id: str
    campaign: str
    channel: str | None
    due_at: datetime
    exclusive_group: str | None


class CouponRow(NamedTuple):
    """A coupon given to a user (not void); `unused`: reserved or issued, not redeemed nor expired."""

    user_id: str
    code: str
    campaign: str
    reserved_at: datetime
    usable_to: datetime
    unused: bool


class KeyedCouponRow(NamedTuple):
    """The coupon of a delivery (by its idempotency key), for the message that speaks of it."""

    coupon_id: str
    idempotency_key: str
    code: str
    issued_at: datetime | None
    reserved_at: datetime
    usable_from: datetime
    usable_to: datetime


class PendingRow(NamedTuple):
    """A delivery to send again (recovery) or release, with its snapshot row."""

    idempotency_key: str
    user_id: str
    arm: str | None
    channel: str | None
    coupon_id: str | None
    seq: int
    held_out: bool
    data: str


class StatusCount(NamedTuple):
    """Deliveries of an occurrence per (status, reason): how many, and their cost."""

    status: str
    reason: str | None
    n: int
    cost: Decimal | None


class OutcomeCount(NamedTuple):
    """How many coupons one `camp sync` moved to an outcome: `ok` or a redemption note (redeemed), `expired`."""

    outcome: str
    n: int
