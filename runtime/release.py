"""Deferred deliveries of a campaign (any step or occurrence) whose quiet hours or local send time are over
at the run's as-of time -> re-checked (runtime.recheck) and dispatched, rendered with the plan they were
decided under. A user whose zone is quiet again at this time keeps waiting, with a new not_before. Then the
points credits of the deliveries sent are issued (runtime.points)."""

from __future__ import annotations

from compiler.plan import StepPlan
from runtime.context import Run
from runtime.decide import quiet_until, user_zone
from runtime.dispatch import dispatch
from runtime.ledger_sink import LedgerSink
from runtime.points import issue_points
from runtime.recheck import recheck
from runtime.recipients import pending


def release(run: Run) -> int:
    """Sends the campaign's deferred deliveries now due; returns how many went to dispatch."""
    if run.ctx.dry_run:
        return 0
    ctx, n = run.ctx, run.counters
    lg = ctx.ledger
    released = 0
    for h in lg.deferred_plan_hashes(ctx.plan.campaign, ctx.as_of):
        plan = StepPlan.model_validate_json(lg.plan_text(h))
        sub = Run(plan, lg, ctx.data_url, ctx.as_of, run_id=ctx.run_id, plan_hash=h,  # the hash the deliveries
                  channels=run.caches.channels)  # were decided under, whatever this version computes
        items = pending(plan, lg.deferred_due_of_plan(h, ctx.as_of))
        ready = []
        for it in items:
            later = quiet_until(plan.quiet, ctx.as_of, user_zone(plan, it.recipient)) if it.channel else None
            if later is not None:
                lg.defer(it.key, later)
            else:
                ready.append(it)
        go = recheck(sub, [(it, None) for it in ready], "release")
        dispatch(go, sub.caches, h, sub.counters, LedgerSink(sub))
        n.touched.update(sub.counters.touched)
        for k, c in sub.counters.counts.items():
            n.counts[k] += c
        n.counts["released"] += len(go)
        n.reasons.update(sub.counters.reasons)
        released += len(go)
    issue_points(run)  # the points of deliveries sent now, and void those suppressed at release
    return released
