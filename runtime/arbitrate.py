"""Arbitration between deployed campaigns: a scheduled run decides only after its rivals have.

    settle(ws, program, campaign, when, ...) -> {} | {"arbitration": {...}} | None

Deployed campaigns are separate flow runs; the scheduler and the workers start them in any order.
`compiler.rivals` names the campaigns that compete with this one for users at its slot and rank
ahead of it (priority, then name). Before it decides, the run of a scheduled first step waits until
each rival's run of the same occurrence is over in the ledger (a `camp_runs` row, not a dry run,
`finished`, `failed` or `interrupted`), for at most `[runtime] arbitration_wait` after the slot.
Past that window it goes ahead, logs a warning and names the rivals it did not wait for in the run
summary (`arbitration.not_waited_for`).

How it waits depends on the ledger:
  * PostgreSQL (runs may overlap): in the process, reading the ledger every POLL_SECONDS.
  * DuckDB: `camp serve` runs one flow run at a time, so a run waiting in its process would hold the
    only slot the rival needs. It re-queues itself instead: a run of its deployment REQUEUE_SECONDS
    later, same parameters with `as_of` pinned to the slot, idempotency key
    `campaign:occurrence:arbitration:N` (N counts the re-queues; a retry of the same run makes the same
    key, so Prefect creates it once), and returns without deciding. A DuckDB run outside a deployment
    (nothing to re-queue) waits in the process, reopening the file for each look.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta

from compiler.rivals import Rival, rivals
from compiler.schedule import latest_fire, schedule_plan
from runtime.ledger import Ledger, open_ledger
from runtime.ledger.backend import backend_for
from runtime.warehouse import dialect_of

POLL_SECONDS = 1.0
REQUEUE_SECONDS = 5


def settle(ws, program, campaign: str, when: datetime, ledger_url: str, step: str | None = None,
           event_id: str | None = None, occurrence: str | None = None, now=None) -> dict | None:
    """What run_campaign does before deciding a run of `campaign` at `when`: {} or a note for the
    summary (go ahead), or None (re-queued: return without deciding). Event runs and follow-up steps
    have no slot and never wait; neither does a run no rival shares users with."""
    now = now or (lambda: datetime.now(UTC))
    c = program.campaigns[campaign]
    if event_id or occurrence is not None or (step and c.steps and step != c.steps[0].name):
        return {}
    if c.schedule is None or c.schedule.kind == "event":
        return {}
    slot = latest_fire(schedule_plan(c.schedule), when)
    if slot is None:
        return {}
    ahead = rivals(program, campaign, slot)
    if not ahead:
        return {}
    log = _logger()
    deadline = slot + timedelta(seconds=ws.config.runtime.arbitration_seconds)
    names = [r.campaign for r in ahead]
    pending = unfinished(ledger_url, ahead)
    if pending and now() < deadline:
        if _one_writer(ledger_url) and _requeue(ws.config.workspace.name, campaign, slot, ahead[0].occurrence, pending, now):
            return None
        log.info("%s: waiting for %s to decide first at %s (until %s)", campaign,
                 ", ".join(r.campaign for r in pending), ahead[0].occurrence, deadline.isoformat())
        pending = wait(ledger_url, pending, deadline, now)
    if pending:
        late = [r.campaign for r in pending]
        log.warning("%s: %s did not finish their run of %s within the arbitration window (%s after the slot); "
                    "deciding without waiting for them", campaign, ", ".join(late), ahead[0].occurrence,
                    ws.config.runtime.arbitration_wait)
        return {"arbitration": {"slot": ahead[0].occurrence, "rivals": names, "not_waited_for": late}}
    return {"arbitration": {"slot": ahead[0].occurrence, "rivals": names, "not_waited_for": []}}


def unfinished(ledger_url: str, ahead: list[Rival]) -> list[Rival]:
    """The rivals whose run of the occurrence is not over in the ledger."""
    lg = open_ledger(ledger_url)
    try:
        return _unfinished(lg, ahead)
    finally:
        lg.close()


def _unfinished(lg: Ledger, ahead: list[Rival]) -> list[Rival]:
    return [r for r in ahead if not lg.run_over(r.campaign, r.step, r.occurrence)]


def _one_writer(ledger_url: str) -> bool:
    """DuckDB: one process writes the ledger at a time (`camp serve` runs one flow run at a time)."""
    return backend_for(dialect_of(ledger_url)).one_writer


def wait(ledger_url: str, pending: list[Rival], deadline: datetime, now) -> list[Rival]:
    """Read the ledger every POLL_SECONDS until the rivals are done or the deadline passes; what is left.
    PostgreSQL: one connection for the whole wait; DuckDB: the file is opened for each look only."""
    keep = not _one_writer(ledger_url)
    lg = open_ledger(ledger_url) if keep else None
    try:
        while pending and now() < deadline:
            time.sleep(min(POLL_SECONDS, max((deadline - now()).total_seconds(), 0.0)))
            pending = _unfinished(lg, pending) if lg is not None else unfinished(ledger_url, pending)
        return pending
    finally:
        if lg is not None:
            lg.close()


def _requeue(workspace: str, campaign: str, slot: datetime, occurrence: str, pending: list[Rival], now) -> bool:
    """Schedule this deployment's run again a little later, for the same slot; False outside a deployment. The
    idempotency key names the workspace: Prefect keeps keys per flow, and every workspace runs the same flow."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx is not None else None
    if run is None or run.deployment_id is None:
        return False
    from prefect.deployments import run_deployment

    prefix = f"{workspace}:{campaign}:{occurrence}:arbitration:"
    done = re.fullmatch(re.escape(prefix) + r"(\d+)", run.idempotency_key or "")
    n = int(done.group(1)) + 1 if done else 1
    at = now() + timedelta(seconds=REQUEUE_SECONDS)
    run_deployment(run.deployment_id, timeout=0, scheduled_time=at, idempotency_key=f"{prefix}{n}",
                   parameters={**(run.parameters or {}), "as_of": slot.isoformat()})
    _logger().info("%s: %s decide first at %s and have not finished; this run decides nothing and runs again at "
                   "%s (re-queue %s: a DuckDB ledger runs one flow run at a time)", campaign,
                   ", ".join(r.campaign for r in pending), occurrence, at.isoformat(), n)
    return True


def noted(ledger_url: str, summary: dict | None, note: dict) -> dict | None:
    """The run's summary with the arbitration note, in the returned summary and in its `camp_runs` row."""
    if not note or not summary or not summary.get("run_id"):
        return summary
    summary = {**summary, **note}
    lg = open_ledger(ledger_url)
    try:
        lg.set_run_summary(summary["run_id"], summary)
    finally:
        lg.close()
    return summary


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 (outside a flow run: tests, scripts)
        return logging.getLogger("camp.arbitrate")
