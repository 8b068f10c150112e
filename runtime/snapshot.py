"""The recipients SQL in the warehouse -> the occurrence's snapshot in the ledger (camp_recipients), as the
range [lo, hi) of seq this run works on.

A first step's recipients are computed once per occurrence: a rerun (after a crash, or a later retry)
reads the same list even if the warehouse changed since. A follow-up's arrive in parts: each as-of time
takes the cohort users due by then (runtime.journey), once. The rows fetched stay in the run's snapshot
cache, so that this process decides from them without reading them back.
"""

from __future__ import annotations

import gc
import sys
from datetime import UTC

from runtime import journey
from runtime.context import Run
from runtime.labels import load_history
from runtime.ledger import Ledger
from runtime.ledger.scratch import ScratchLedger
from runtime.ledger_facts import load_ledger_facts
from runtime.recipients import payloads
from runtime.warehouse import connect


def snapshot(run: Run) -> tuple[int, int]:
    """The recipients of this run, as the range [lo, hi) of their seq in the occurrence's snapshot."""
    with run.counters.timing("audience"):
        return _snapshot(run)


def _snapshot(run: Run) -> tuple[int, int]:
    ctx, cache = run.ctx, run.snapshot
    lg, p = ctx.ledger, ctx.plan
    part = ctx.as_of.astimezone(UTC).isoformat() if p.journey else None
    if not ctx.dry_run:
        done = _part(lg, run, part)
        if done is not None:
            return done
    cohort = journey.cohort(lg, p, ctx.as_of) if p.journey else None
    if cohort is not None and len(cohort) == 0:
        n = 0 if ctx.dry_run else lg.snapshot_size(ctx.occ) or 0
        return n, n
    names, data = _fetch(run, cohort)
    gc.freeze()  # the snapshot lives as long as the run: keep the collector from rescanning a million rows
    idx = {n: i for i, n in enumerate(names)}
    users = [str(row[0]) for row in data]
    if ctx.dry_run:
        cache.rows, cache.names, cache.users = data, idx, users
        return 0, len(data)
    with lg.decision():  # one writer of the occurrence's snapshot at a time
        done = _part(lg, run, part)
        if done is not None:
            return done
        lo = lg.snapshot_size(ctx.occ) or 0
        # a scratch ledger's snapshot gets the rows (or data) of the users read back later only (runtime.batch fills them)
        cache.payload_later = isinstance(lg, ScratchLedger)
        held = idx["held_out"]
        cache.rows, cache.lo, cache.names, cache.users = data, lo, idx, users
        cache.fresh = len(set(users)) == len(data)
        lg.add_recipients(ctx.occ, ctx.plan_hash, lo, users, [bool(row[held]) for row in data],
                          "" if cache.payload_later else payloads(names, data), part)
    return lo, lo + len(data)


def _fetch(run: Run, cohort) -> tuple[list[str], list]:
    wh = connect(run.ctx.data_url, read_only=True)
    try:
        p = run.ctx.plan
        if cohort is not None:
            journey.load_cohort(wh, p, cohort)
        load_ledger_facts(wh, run.ctx.ledger, p.campaign, p.redeemed, p.tags, p.audience_as_of,
                          p.occurrence if p.journey else None)
        for warning in load_history(wh, run.ctx.ledger, p.history, p.audience_as_of):
            print(f"camp run: warning: {p.campaign}: {warning}", file=sys.stderr)
        cur = wh.execute(p.recipients_sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        wh.close()


def _part(lg: Ledger, run: Run, part: str | None) -> tuple[int, int] | None:
    """The range an earlier attempt at the same snapshot (or part) already took, if any."""
    if part is None:
        n = lg.snapshot_size(run.ctx.occ)
        return (0, n) if n is not None else None
    return lg.snapshot_part(run.ctx.occ, part)
