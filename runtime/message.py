"""A pending delivery -> its message: rendered with the plan's template for its channel, addressed from
the recipient's fields (`message`); a message -> its outbox row (`outbox_row`). A template or a value
that fails gives a `Failure` (why, with a short reason), never an exception: that delivery fails, not
the batch.
"""

from __future__ import annotations

from datetime import datetime

from compiler.plan import StepPlan
from runtime.channels import Message
from runtime.context import Pending, RunCaches
from runtime.render import RenderError


class Failure(str):
    """Why a message could not be made (the ledger's `error`), with the short `reason`."""

    reason: str

    def __new__(cls, text: str, reason: str) -> Failure:
        self = super().__new__(cls, text)
        self.reason = reason
        return self


def message(plan: StepPlan, plan_hash: str, caches: RunCaches, it: Pending,
            coupon: dict | None) -> tuple[Message | None, Failure | None]:
    """One user's message (None for a grant without a channel), or why it could not be made."""
    if it.channel is None:
        return None, None
    ch = caches.channel_plan(it.arm, it.channel)
    rd = caches.renderer()
    try:
        subject, body = rd.render(ch, rd.user_context(it.user_id, it.recipient.fields, it.arm, coupon))
        address = it.recipient.fields.get(ch.address_field) if ch.address_field else None
        address = None if address is None else str(address)
    except RenderError as exc:
        return None, Failure(str(exc), exc.reason)
    except Exception as exc:  # noqa: BLE001 (this user's values: their message fails, not the batch)
        return None, Failure(f"{type(exc).__name__}: {exc}", f"data: {type(exc).__name__}")
    return Message(it.key, plan.campaign, plan.step, plan.occurrence, it.user_id, it.channel, address, subject,
                   body, plan_hash, {"arm": it.arm, "coupon_id": it.coupon_id}), None


def outbox_row(m: Message, now: datetime) -> tuple:
    """The camp_outbox row (OUTBOX_COLS) of a message written at `now`."""
    return (m.key, m.campaign, m.step, m.occurrence, m.user_id, m.channel, m.address, m.subject, m.body, m.plan_hash,
            now)
