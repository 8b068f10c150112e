"""The ledger as dispatch's sink (runtime.dispatch.DispatchSink): what a run's dispatch records goes to its
ledger store; a fallback is re-checked against the warehouse and the ledger (runtime.recheck) first."""

from __future__ import annotations

from datetime import datetime

from runtime.channels import Message
from runtime.context import Pending, Run
from runtime.history import coupon_contexts, journey_coupons
from runtime.message import outbox_row
from runtime.recheck import recheck


class LedgerSink:
    """Dispatch's records for one run (a release's sub-run for the deliveries of its plan)."""

    def __init__(self, run: Run):
        self.run = run
        self.ledger = run.ctx.ledger

    def coupons(self, items: list[Pending]) -> dict[str, dict]:
        ctx = self.run.ctx
        found = coupon_contexts(ctx, [it.key for it in items if it.coupon_id])
        given = journey_coupons(ctx, [it.user_id for it in items if not it.coupon_id])
        found.update({it.key: given[it.user_id] for it in items if not it.coupon_id and it.user_id in given})
        return found

    def outbox(self, messages: list[Message], keys: list[str], at: datetime) -> None:
        self.ledger.sent_to_outbox([outbox_row(m, at) for m in messages], keys, at)

    def dispatching(self, keys: list[str]) -> None:
        self.ledger.mark_dispatching(keys)

    def sent(self, rows: list[tuple[str, datetime, str | None]]) -> None:
        self.ledger.mark_sent(rows)

    def failed(self, failures: list[tuple[str, str, str]]) -> None:
        self.ledger.mark_failed(failures)

    def pending_again(self, keys: list[str], error: str) -> None:
        self.ledger.back_to_pending(keys, error)

    def fall_back(self, moving: list[tuple[Pending, str]]) -> list[Pending]:
        return recheck(self.run, moving, "fallback")
