"""Deliveries an earlier, killed attempt at the occurrence left pending or dispatching -> dispatched again,
with the same idempotency key (the earlier runs still recorded `running` whose process is gone are marked
`interrupted` first: this run takes over their work); points credits they decided and did not issue -> issued
(runtime.points)."""

from __future__ import annotations

from runtime.context import Run
from runtime.dispatch import dispatch
from runtime.ledger_sink import LedgerSink
from runtime.points import issue_points
from runtime.recipients import pending


def recover(run: Run) -> int:
    """Sends again what killed runs of this occurrence left unsent; returns how many."""
    if run.ctx.dry_run:
        return 0
    _interrupt_dead(run)
    cache = run.snapshot
    if cache.unseen(run.ctx.ledger.backend.one_writer) and cache.lo == 0:
        # this run has just written the occurrence's first snapshot rows: no earlier attempt got as far as a
        # snapshot, so none left a delivery (or a credit) behind. (The lookup joins the snapshot table, whose scan
        # grows with the ledger: 2 s of a simulated month's 200 runs.)
        return 0
    items = pending(run.ctx.plan, run.ctx.ledger.unsent(run.ctx.occ))
    dispatch(items, run.caches, run.ctx.plan_hash, run.counters, LedgerSink(run))
    issue_points(run)  # credits a killed run decided and did not issue: same key, issued once
    return len(items)


def _interrupt_dead(run: Run) -> list[str]:
    """Mark `interrupted` the earlier runs of this occurrence still recorded `running` whose process is
    gone (Ledger.interrupt_dead_runs)."""
    return run.ctx.ledger.interrupt_dead_runs(run.ctx.occ, run.ctx.run_id)
