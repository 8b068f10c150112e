"""Points credits of an occurrence still pending -> their issuer (camp.toml `[points] issue_with`): a channel
adapter such as a webhook to the shop's points system, each credit sent as a Message with the delivery's
idempotency key (`KEY/points`), the same on every retry, so a receiver that honours it credits once.

The outbox issuer never leaves a credit pending: the batch writes it issued in the decision's transaction
(camp_points is the outbox the shop reads). A crash after the decision and before the issue leaves credits
pending; the next run of the occurrence issues them (`runtime.recover`), never a second credit in the ledger.
A permanent failure voids the credit; a transient one leaves it pending for the next run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.channels import Message, PermanentFailure, TransientFailure
from runtime.context import Run


def issue_points(run: Run) -> int:
    """Issue the occurrence's pending credits; returns how many were issued now."""
    ctx = run.ctx
    if ctx.dry_run or not any(r.kind == "points" for r in ctx.plan.resources.values()):
        return 0
    issued = 0
    for c in ctx.ledger.unissued_points(ctx.occ):
        key = f"{c.idempotency_key}/points"
        msg = Message(key=key, campaign=c.campaign, step=c.step, occurrence=c.occurrence, user_id=c.user_id,
                      channel=c.issuer, address=None, subject=None, body=f"{c.points} points",
                      plan_hash=ctx.plan_hash, data={"kind": "points", "points": c.points})
        try:
            provider = run.caches.channels.get(c.issuer).send(msg)
        except PermanentFailure as exc:
            ctx.ledger.points_failed(c.idempotency_key, f"{c.issuer}: {exc}", void=True)
            run.counters.reasons["points: refused by the issuer"] += 1
            continue
        except TransientFailure as exc:
            ctx.ledger.points_failed(c.idempotency_key, f"{c.issuer}: {exc}", void=False)
            run.counters.reasons["points: issuer down, left pending"] += 1
            continue
        ctx.ledger.points_issued(c.idempotency_key, datetime.now(UTC), provider)
        issued += 1
    return issued
