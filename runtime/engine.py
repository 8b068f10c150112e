"""The driver: one StepPlan's run, stage by stage, against the warehouse and the ledger (no Prefect here:
`runtime.flows` wraps the stages in tasks; `run_through` calls them in the same order in this process).

    start      : the run recorded `running` (its ledger session holds the run's liveness lock)
    snapshot   : recipients SQL in the warehouse -> camp_recipients (runtime.snapshot)
    recover    : deliveries a killed run left pending/dispatching -> dispatched again (runtime.recover)
    release    : deferred deliveries whose quiet hours are over -> dispatched (runtime.release)
    send_batch : decide (runtime.batch) -> dispatch with fallback and breaker (runtime.dispatch) -> points
                 credits to their issuer (runtime.points)
    summarize  : counts by status and reason, cost, budget left (runtime.summary)
    finish     : the run's record closed with its summary

Idempotency: one ledger row per (campaign, step, occurrence, user), keyed by a unique text key;
a user with a row is never decided again, and only pending/dispatching rows are ever sent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from compiler.plan import StepPlan
from runtime.batch import decide_batch
from runtime.context import Run, RunContext
from runtime.dispatch import dispatch
from runtime.ledger import Ledger
from runtime.ledger.status import RunStatus
from runtime.ledger_sink import LedgerSink
from runtime.points import issue_points
from runtime.recover import recover
from runtime.release import release
from runtime.retention import plan_lookback
from runtime.snapshot import snapshot
from runtime.summary import summarize


class Archived(Exception):
    """The run would read deliveries `camp ledger archive` moved out: it is refused rather than decide on fewer."""


def start(run: Run, flow_run_id: str | None = None) -> None:
    """Record the run as `running`; its ledger session holds the run's liveness lock (Ledger.start_run). A run of
    an archived occurrence, or one whose caps or exclusive hold look back past what an archive moved, is refused
    (a dry run too: it would preview decisions made on fewer deliveries)."""
    ctx = run.ctx
    _check_archive(ctx)
    if ctx.dry_run:
        return
    ctx.ledger.start_run(ctx.run_id, ctx.plan, ctx.plan_hash, ctx.as_of, flow_run_id)


def _check_archive(ctx: RunContext) -> None:
    lg, p = ctx.ledger, ctx.plan
    when = lg.archived_step(*ctx.occ)
    if when is not None:
        raise Archived(f"{p.campaign} / {p.step} @ {p.occurrence} was archived on {when.astimezone(UTC):%Y-%m-%d %H:%M} "
                       "UTC (camp ledger archive): it does not run again; its deliveries are in "
                       "camp_deliveries_archive")
    horizon = lg.archive_horizon()
    since = plan_lookback(p, ctx.as_of)
    if horizon is not None and since is not None and since < horizon:
        raise Archived(f"at {ctx.as_of.isoformat()} the caps and exclusive hold of {p.campaign} look back to "
                       f"{since.astimezone(UTC).isoformat()}, but deliveries due before "
                       f"{horizon.astimezone(UTC).isoformat()} were archived (camp ledger archive): run it at an as-of "
                       f"of {(ctx.as_of + (horizon - since)).isoformat()} or later")


def finish(run: Run, summary: dict, status: str = RunStatus.FINISHED) -> None:
    if run.ctx.dry_run:
        return
    run.ctx.ledger.finish_run(run.ctx.run_id, status, summary)


def send_batch(run: Run, lo: int, hi: int) -> None:
    """Decide users seq lo..hi-1 and send those due now (a dry run only decides)."""
    pending = decide_batch(run, lo, hi)
    with run.counters.timing("dispatch"):
        if not run.ctx.dry_run:
            dispatch(pending, run.caches, run.ctx.plan_hash, run.counters, LedgerSink(run))
            issue_points(run)


def release_run(lg: Ledger, campaign: str, data_url: str, as_of: datetime, channels: dict) -> Run | None:
    """A run that only releases this campaign's deferred deliveries due at `as_of` (a scheduled release, or
    `camp run --release`): nothing is decided anew. Its record in camp_runs carries the step of the plan
    the first of them was decided under and the occurrence `release@<as-of minute>`. None: nothing is due."""
    h = lg.first_deferred_plan_hash(campaign, as_of)
    if h is None:
        return None
    plan = StepPlan.model_validate_json(lg.plan_text(h))
    label = plan.model_copy(update={"occurrence": f"release@{as_of.astimezone(UTC):%Y-%m-%dT%H:%MZ}", "next": None})
    return Run(label, lg, data_url, as_of, channel_config=channels, plan_hash=h)


def run_through(run: Run, batch: int) -> dict:
    """The flow's stages for one Run in this process, without Prefect (tests, benchmarks): record the run,
    snapshot, recover, release, decide and send batch by batch, summarize, finish. Returns the summary."""
    start(run)
    lo, hi = snapshot(run)
    recover(run)
    release(run)
    for a in range(lo, hi, batch):
        send_batch(run, a, min(a + batch, hi))
    summary = summarize(run, hi - lo)
    finish(run, summary)
    return summary
