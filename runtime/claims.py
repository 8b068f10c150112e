"""A worker's share of one occurrence: claim the run's next batch from the ledger (runtime.ledger.batches), decide
and send it through the engine's own `send_batch`, mark it done with what this worker counted, until no batch is
left. No Prefect here: `runtime.workers` wraps it in the `camp-batch-worker` flow.

Everything a worker needs comes from the ledger, not from the process that resolved the audience: the recipients
are read from the snapshot (camp_recipients) batch by batch, the decisions take the ledger's decision lock (caps,
budget and exclusive groups stay exact across workers), and a user already decided is never decided again. A
batch taken over from a killed worker first gets what that worker left pending or dispatching sent again, with
the same idempotency keys, as `camp run` does after a crash (runtime.recover).
"""

from __future__ import annotations

from collections import Counter

from runtime import engine
from runtime.context import Run
from runtime.dispatch import dispatch
from runtime.ledger.batches import claim, finish_batch, release_batch, unsent_in
from runtime.ledger_sink import LedgerSink
from runtime.recipients import pending


def work_batches(run: Run, worker: str, lease_s: float) -> int:
    """Claim, decide and send batches of `run` until none is left to claim; how many this worker did."""
    done = 0
    lg, n = run.ctx.ledger, run.counters
    while (c := claim(lg, run.run_id, worker, lease_s)) is not None:
        try:
            before = _counts(run)
            if c.attempts > 1:  # taken over: what the earlier claimant decided but did not send, sent now
                left = pending(run.ctx.plan, unsent_in(lg, run.ctx.occ, c.lo, c.hi))
                dispatch(left, run.caches, run.ctx.plan_hash, n, LedgerSink(run))
            engine.send_batch(run, c.lo, c.hi)
            finish_batch(lg, run.run_id, c.lo, _delta(before, _counts(run)))
        finally:
            release_batch(lg, run.run_id, c.lo)
        done += 1
    return done


def _counts(run: Run) -> dict:
    n = run.counters
    return {"counts": Counter(n.counts), "reasons": Counter(n.reasons), "cost": n.cost, "left_out": list(n.left_out),
            "unknown_zones": n.unknown_zones}


def _delta(a: dict, b: dict) -> dict:
    """What one batch added to the counters, as plain JSON data."""
    return {"counts": dict(b["counts"] - a["counts"]), "reasons": dict(b["reasons"] - a["reasons"]),
            "cost": str(b["cost"] - a["cost"]), "left_out": b["left_out"][len(a["left_out"]):],
            "unknown_zones": b["unknown_zones"] - a["unknown_zones"]}


def add_results(run: Run, results: list[dict]) -> None:
    """The workers' counts of each batch added to this run's counters, for its summary's `this_run`."""
    from decimal import Decimal

    n = run.counters
    for r in results:
        n.counts.update(r.get("counts", {}))
        n.reasons.update(r.get("reasons", {}))
        n.cost += Decimal(r.get("cost", "0"))
        n.left_out.extend(r.get("left_out", [])[:max(0, 20 - len(n.left_out))])
        n.unknown_zones += r.get("unknown_zones", 0)
