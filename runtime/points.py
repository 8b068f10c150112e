"""A campaign's points credits still pending whose delivery was sent -> their issuer (camp.toml `[points]
issue_with`): the outbox (camp_points is the outbox the shop's points system reads: marked issued), or a channel
adapter such as a webhook to the shop's points system, each credit sent as a Message with the delivery's
idempotency key (`KEY/points`), the same on every retry, so a receiver that honours it credits once.

A credit whose delivery was sent in the decision's own transaction (the outbox channel) is written issued there
when the outbox issues it. A crash after the send and before the issue leaves credits pending; the next run of
the campaign issues them (after its batches, `recover` and `release`), never a second credit in the ledger.
Credits whose delivery was not sent after all (failed, or suppressed at a re-check, which gives the delivery's
reservation back) become void. A permanent failure of the issuer voids the credit; a transient one leaves it pending.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.channels import Message, PermanentFailure, TransientFailure
from runtime.context import Run


def issue_points(run: Run) -> int:
    """Issue the campaign's pending credits of sent deliveries, void those of deliveries never sent; returns how
    many were issued now."""
    ctx = run.ctx
    if ctx.dry_run or not any(r.kind == "points" for r in ctx.plan.resources.values()):
        return 0
    lg, campaign = ctx.ledger, ctx.plan.campaign
    lg.void_unsent_points(campaign)
    issuers = {r.issuer or "outbox" for r in ctx.plan.resources.values() if r.kind == "points"}
    issued = sum(lg.issue_in_outbox(campaign, i, datetime.now(UTC)) for i in sorted(issuers)
                 if run.caches.channels.get(i).transactional)
    for c in lg.unissued_points(campaign):
        channel = run.caches.channels.get(c.issuer)
        if channel.transactional:  # an outbox issuer the plan no longer names: the row is what the shop reads
            lg.points_issued(c.idempotency_key, datetime.now(UTC), f"outbox:{c.idempotency_key}")
            issued += 1
            continue
        msg = Message(key=f"{c.idempotency_key}/points", campaign=c.campaign, step=c.step, occurrence=c.occurrence,
                      user_id=c.user_id, channel=c.issuer, address=None, subject=None, body=f"{c.points} points",
                      plan_hash=ctx.plan_hash, data={"kind": "points", "points": c.points})
        try:
            provider = channel.send(msg)
        except PermanentFailure as exc:
            lg.points_failed(c.idempotency_key, f"{c.issuer}: {exc}", void=True)
            run.counters.reasons["points: refused by the issuer"] += 1
            continue
        except TransientFailure as exc:
            lg.points_failed(c.idempotency_key, f"{c.issuer}: {exc}", void=False)
            run.counters.reasons["points: issuer down, left pending"] += 1
            continue
        lg.points_issued(c.idempotency_key, datetime.now(UTC), provider)
        issued += 1
    return issued
