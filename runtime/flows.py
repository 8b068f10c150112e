"""The Prefect side: one generic flow runs one occurrence of one step of any campaign, from its plan.

    camp-step (flow, parameters: the plan as JSON, where the data and ledger are, the as-of time)
      ├─ resolve-audience   (task: recipients SQL in the warehouse -> snapshot in the ledger)
      ├─ recover-and-release (task: resend what a killed run left in flight, send deferred messages now due)
      ├─ send-batch × N     (task per batch of `batch_size` recipients, never per user)
      └─ summarize          (task: counts from the ledger; table + markdown artifacts)

Campaigns are parameters, not generated code. The ledger is the source of truth; Prefect's run
records and artifacts summarise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext, get_run_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from compiler.config import Redemptions
from compiler.plan import StepPlan
from dsl.diagnostics import Diagnostic
from runtime import arbitrate, engine
from runtime.context import Run
from runtime.coupon_sync import sync_coupons
from runtime.ledger import open_ledger
from runtime.ledger.status import RunStatus
from runtime.recover import recover
from runtime.release import release
from runtime.snapshot import snapshot
from runtime.summary import release_summary
from runtime.summary import summarize as summary_of

progress: Callable[[str, int, int], None] | None = None  # set by the CLI: (stage, done, total)
_RUNS: dict[str, Run] = {}  # run id -> the run in this process. Tasks take the id, never the Run:
# Prefect walks task parameters (to resolve futures), which would visit every snapshot row.


@contextmanager
def run_settings():
    """Prefect settings for camp's runs: flow heartbeats off unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set.
    Joining the heartbeat thread costs about a second per flow run; a killed run is found and resumed
    from the ledger (a rerun of the occurrence), not from Prefect's crash detection."""
    if os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def _report(stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


@task(name="sync-coupons", cache_policy=NONE, persist_result=False)
def sync_coupon_states(ledger_url: str, data_url: str, redemptions: dict, as_of: str) -> dict:
    """The shop's redemptions and expiries up to as-of -> the ledger's coupons (runtime.coupon_sync), in its own
    ledger session: what `camp sync` does, before every run decides."""
    lg = open_ledger(ledger_url)
    try:
        result = sync_coupons(lg, data_url, Redemptions.model_validate(redemptions), datetime.fromisoformat(as_of))
    finally:
        lg.close()
    return dataclasses.asdict(result)


@task(name="resolve-audience", cache_policy=NONE, persist_result=False)
def resolve_audience(run_id: str) -> tuple[int, int]:
    return snapshot(_RUNS[run_id])


@task(name="recover-and-release", cache_policy=NONE, persist_result=False)
def recover_and_release(run_id: str) -> tuple[int, int]:
    return recover(_RUNS[run_id]), release(_RUNS[run_id])


@task(name="send-batch", cache_policy=NONE, persist_result=False, task_run_name="send-batch-{lo}")
def send_batch(run_id: str, lo: int, hi: int) -> None:
    engine.send_batch(_RUNS[run_id], lo, hi)


@task(name="summarize", cache_policy=NONE, persist_result=False)
def summarize(run_id: str, audience: int) -> dict:
    run = _RUNS[run_id]
    summary = summary_of(run, audience)
    rows = [{"status": k, "users": v} for k, v in sorted(summary["statuses"].items())]
    rows += [{"status": k, "users": v} for k, v in sorted(summary["reasons"].items())]
    key = artifact_key(run.plan.campaign, run.plan.step)
    create_table_artifact(rows, key=key, description=f"{run.plan.campaign}/{run.plan.step} {run.plan.occurrence}")
    create_markdown_artifact(markdown(summary), key=key + "-summary")
    return summary


@task(name="outcomes", cache_policy=NONE, persist_result=False)
def outcome_artifact(workspace: str, campaign: str, step: str, data_url: str, ledger_url: str, as_of: str) -> None:
    """The campaign's current numbers as of the run (runtime.measure: conversion of the treated against the
    holdout, uplift, redemptions, subsidy, ROI, targets) as a markdown artifact, key camp-<campaign>-outcomes. A
    failure here is logged and the run stays finished: it has delivered, and `camp report` can say the rest."""
    from pathlib import Path

    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from runtime.measure import measure
    from runtime.warehouse import connect

    try:
        ws = load_workspace(Path(workspace))
        program = check_workspace(ws).program if not isinstance(ws, Diagnostic) else None
        if program is None or campaign not in program.campaigns or isinstance(ws, Diagnostic):
            return
        lg, wh = open_ledger(ledger_url), connect(data_url, read_only=True)
        try:
            m = measure(program, program.campaigns[campaign], lg, wh, datetime.fromisoformat(as_of),
                        ws.config.report.margin_fraction, ws.config.clicks.clicks(program.schema))
        finally:
            wh.close()
            lg.close()
        create_markdown_artifact(outcome_markdown(m), key=artifact_key(campaign, "outcomes"),
                                 description=f"{campaign} outcomes as of {as_of} (after {step})")
    except Exception as exc:  # noqa: BLE001 (the run has delivered; its record must not say it failed)
        get_run_logger().warning("%s: its outcomes could not be measured (%s: %s); `camp report` shows them",
                                 campaign, type(exc).__name__, exc)


def outcome_markdown(m) -> str:
    """The headline of a runtime.measure Measurement, for the artifact."""
    def rate(i) -> str:
        if i is None or i.value is None:
            return "–"
        band = "" if i.low is None or i.high is None else f" [{i.low:.1%}, {i.high:.1%}]"
        return f"{i.value:.1%}{band}"

    def points(i) -> str:
        if i is None or i.value is None:
            return "– (no holdout to compare with yet)"
        band = "" if i.low is None or i.high is None else f" [{i.low * 100:+.1f}, {i.high * 100:+.1f}] pp"
        return f"{i.value * 100:+.1f} pp{band}"

    t = m.total
    lines = [f"# {m.campaign}: outcomes as of {m.as_of:%Y-%m-%d %H:%M} UTC", "",
             f"goal window {m.goal_window or '–'} from each user's first send; intention to treat against the holdout",
             ""]
    if t is None:
        return "\n".join(lines + ["nobody exposed yet"])
    lines += ["| | |", "| --- | ---: |",
              f"| treated (reached) | {t.treated:,} ({t.reached:,}) |",
              f"| conversion, treated | {rate(t.conversion)} |",
              f"| conversion, holdout ({t.holdout:,}) | {rate(t.holdout_conversion)} |",
              f"| uplift | {points(t.uplift)} |",
              *([f"| clicked / reached | {t.clicked:,} / {t.reached:,}: {rate(t.click_rate)} |"]
                if t.clicked is not None else []),
              f"| coupons redeemed / issued | {t.redeemed:,} / {t.issued:,} |",
              f"| sales of converters | {t.sales} {m.currency} |",
              f"| subsidy | {t.subsidy} {m.currency} |",
              f"| ROI | {t.roi if t.roi is not None else '–'} |"]
    lines += [f"| target {g.metric} {g.op} {g.value:.1%} | {g.status}: {rate(g.actual)} |" for g in m.targets]
    if t.open_windows:
        lines += ["", f"window open for {t.open_windows:,} exposures: the numbers still move"]
    return "\n".join(lines)


def artifact_key(campaign: str, step: str) -> str:
    """A Prefect artifact key (lowercase ASCII letters, digits and dashes only) for any campaign and step name
    the language accepts: the ASCII part of the names, plus a short hash of both whenever anything was dropped
    or changed, so that `双十一预热` and `春节预热` get different keys."""
    raw = f"{campaign}-{step}"
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower().replace("_", "-")).strip("-")
    if slug != raw.lower().replace("_", "-") or len(slug) > 60:
        slug = f"{slug[:60].strip('-')}-{hashlib.sha256(raw.encode()).hexdigest()[:10]}".strip("-")
    return f"camp-{slug}"


def markdown(s: dict) -> str:
    lines = [f"# {s['campaign']} / {s['step']} @ {s['occurrence']}" + (" (dry run)" if s["dry_run"] else ""), "",
             f"plan `{s['plan_hash'][:16]}` · run `{s['run_id']}` · audience **{s['audience']}**", "",
             "| status | users |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(s["statuses"].items())]
    if s["reasons"]:
        lines += ["", "| why | users |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in sorted(s["reasons"].items())]
    lines += ["", f"cost: {s['cost']} {s['currency']}"]
    if "budget_left" in s:
        lines.append(f"budget left: total {s['budget_left']['total']}, today {s['budget_left']['today']}")
    if "spend" in s:
        a = s["spend"]["actual"]
        lines.append(f"spend: forecast {s['spend']['forecast']} reserved; actual {a['total']} (coupons redeemed "
                     f"{a['coupons']}, points issued {a['points']}, red packets paid {a['red_packets']})")
    return "\n".join(lines)


@flow(name="camp-step", log_prints=False, validate_parameters=False, persist_result=False)
def run_step(plan: dict, data_url: str, ledger_url: str, as_of: str, dry_run: bool = False,
             batch_size: int = 10000, channels: dict | None = None, redemptions: dict | None = None,
             workspace: str | None = None, workers: int = 1, lease: float = 300.0, work_pool: str | None = None,
             start_wait: float = 120.0) -> dict:
    """Run one occurrence of one campaign step exactly as `plan` says. With `redemptions` (camp.toml's
    [coupons] source), the shop's redemptions and expiries are synced first, so unused-coupon caps decide on
    the coupons' real state (runtime.coupon_sync); a dry run syncs nothing. With `workspace` (its path), the run
    ends with an artifact of the campaign's current outcomes (what `camp report` shows). With `workers` > 1 (a
    PostgreSQL ledger), the batches are decided and sent by that many `camp-batch-worker` processes claiming
    them from the ledger (runtime.workers; a claim lasts `lease` seconds), or with `work_pool` by that many flow
    runs on that Prefect work pool's workers, the batches listed once they have started or after `start_wait`
    seconds; a dry run decides in this process."""
    if workers > 1 and not dry_run:
        from runtime.workers import check_pool, check_workers

        check_workers(workers, ledger_url)
        if work_pool:
            check_pool(work_pool)
    step_plan = StepPlan.model_validate(plan)
    ledger = open_ledger(ledger_url)
    run = Run(step_plan, ledger, data_url, datetime.fromisoformat(as_of), dry_run, channels or {})
    try:
        ctx = get_run_context()
        engine.start(run, str(ctx.flow_run.id) if isinstance(ctx, FlowRunContext) and ctx.flow_run else None)
        synced = sync_coupon_states(ledger_url, data_url, redemptions, as_of) if redemptions and not dry_run else None
        _report("audience", 0, 1)
        _RUNS[run.run_id] = run
        lo, hi = resolve_audience(run.run_id)
        audience = hi - lo
        _report("audience", 1, 1)
        recovered, released = recover_and_release(run.run_id)
        if recovered or released:
            get_run_logger().info("resent %s in-flight deliveries, released %s deferred", recovered, released)
        if workers > 1 and not dry_run:
            from runtime.workers import spread

            spread(run, lo, hi, batch_size, workers, ledger_url, channels or {}, lease, work_pool, start_wait)
            _report("send", audience, audience)
        for a in range(lo, hi, batch_size) if workers <= 1 or dry_run else ():
            send_batch(run.run_id, a, min(a + batch_size, hi))
            _report("send", min(a + batch_size, hi) - lo, audience)
        summary = summarize(run.run_id, audience)
        if synced is not None:
            summary["coupon_sync"] = synced
        engine.finish(run, summary)
        if workspace is not None and not dry_run:
            outcome_artifact(workspace, step_plan.campaign, step_plan.step, data_url, ledger_url, as_of)
        return summary
    except BaseException as exc:
        if not dry_run and not isinstance(exc, engine.Archived):  # (a refused run never started: nothing to say)
            try:  # what was delivered before the failure, from the ledger: the run record and the caller say it
                done = summary_of(run, run.counters.counts.total())
                done["error"] = f"{type(exc).__name__}: {exc}"
                engine.finish(run, done, RunStatus.FAILED)
                exc.camp_summary = done  # type: ignore[attr-defined]  # read by `camp run`
            except Exception:  # noqa: BLE001 (the original error matters more)
                pass
        raise
    finally:
        _RUNS.pop(run.run_id, None)
        run.close()
        ledger.close()


@flow(name="camp-release", log_prints=False, validate_parameters=False, persist_result=False)
def release_step(campaign: str, data_url: str, ledger_url: str, as_of: str, channels: dict | None = None) -> dict | None:
    """Send a campaign's deliveries deferred until `as_of` or earlier (quiet hours, local-time sends), as
    they were decided; nothing is decided anew. None when nothing is due."""
    ledger = open_ledger(ledger_url)
    try:
        run = engine.release_run(ledger, campaign, data_url, datetime.fromisoformat(as_of), channels or {})
        if run is None:
            return None
        try:
            ctx = get_run_context()
            engine.start(run, str(ctx.flow_run.id) if isinstance(ctx, FlowRunContext) and ctx.flow_run else None)
            released = release(run)
            summary = release_summary(run)
            get_run_logger().info("%s: released %s deferred deliveries", campaign, released)
            engine.finish(run, summary)
            return summary
        except BaseException:
            try:
                engine.finish(run, {}, RunStatus.FAILED)
            except Exception:  # noqa: BLE001 (the original error matters more)
                pass
            raise
        finally:
            run.close()
    finally:
        ledger.close()


def _checked(workspace: str):
    """(the workspace, its checked program) as it is now, for a deployed flow; an error stops the run."""
    from pathlib import Path

    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    ws = load_workspace(Path(workspace))
    if isinstance(ws, Diagnostic):  # no camp.toml there (any more)
        raise RuntimeError(f"{workspace}: {ws.message}")
    result = check_workspace(ws)
    if result.errors:
        raise RuntimeError(f"{workspace}: {len(result.errors)} errors; run camp check")
    return ws, result.program


def _scheduled(as_of: str | None) -> datetime:
    from prefect.runtime import flow_run

    return datetime.fromisoformat(as_of) if as_of else flow_run.scheduled_start_time


@flow(name="camp-alert", log_prints=False, validate_parameters=False, persist_result=False)
def alert_flow(workspace: str, alert: str, as_of: str | None = None) -> dict | None:
    """What an alert's deployment runs: compile the workspace as it is now and evaluate the alert for the
    scheduled time (or `as_of`): one message to its team per occurrence when its threshold is crossed
    (runtime.alert). A failed message fails the flow run, so Prefect shows it and a retry sends it."""
    from runtime.alert import run_alert
    from runtime.step import channels_of
    from runtime.warehouse import connect, run_urls

    ws, program = _checked(workspace)
    a = program.alerts.get(alert)
    if a is None:
        get_run_logger().warning("alert %s is no longer in %s; nothing to evaluate", alert, workspace)
        return None
    data_url, ledger_url = run_urls(ws)
    lg, wh = open_ledger(ledger_url), connect(data_url, read_only=True)
    try:
        out = run_alert(program, a, ws.config.teams[a.team], channels_of(ws), wh, lg, _scheduled(as_of))
    finally:
        wh.close()
        lg.close()
    summary = {"alert": alert, "occurrence": out.occurrence.isoformat() if out.occurrence else None,
               "matched": out.matched, "population": out.population, "state": out.state}
    if out.state == "failed":
        raise RuntimeError(f"alert {alert}: the message to {a.team} failed ({out.error}); a retry sends it")
    get_run_logger().info("alert %s: %s users, %s", alert, f"{out.matched:,}", out.state)
    return summary


@flow(name="camp-materialize", log_prints=False, validate_parameters=False, persist_result=False)
def materialize_labels(workspace: str, names: list[str], as_of: str | None = None) -> list[dict]:
    """What a `materialize` declaration's deployment runs: compile the workspace as it is now and materialise
    the names still declared, as of the scheduled time (or `as_of`), into the ledger's label history
    (runtime/labels.py); a time already materialised changes nothing, so a retry is harmless."""
    from runtime.labels import materialize
    from runtime.warehouse import run_urls

    ws, program = _checked(workspace)
    declared = [n for n in names if n in program.materialized]
    gone = sorted(set(names) - set(declared))
    if gone:
        get_run_logger().warning("no longer materialised in %s: %s", workspace, ", ".join(gone))
    when = _scheduled(as_of)
    data_url, ledger_url = run_urls(ws)
    lg = open_ledger(ledger_url)
    try:
        done = materialize(program, data_url, lg, declared, when)
    finally:
        lg.close()
    out = [dataclasses.asdict(r) | {"as_of": r.as_of.isoformat()} for r in done]
    get_run_logger().info("materialised as of %s: %s", when.isoformat(), out)
    return out


def spread_settings(ws) -> tuple[float, str | None, float]:
    """camp.toml's [runtime] lease, work_pool and start_wait: run_step's last three parameters."""
    r = ws.config.runtime
    return float(r.lease_seconds), r.work_pool, float(r.start_wait_seconds)


@flow(name="camp-campaign", log_prints=False, validate_parameters=False, persist_result=False)
def run_campaign(workspace: str, campaign: str, step: str | None = None, as_of: str | None = None,
                 batch_size: int = 10000, user_id: str | None = None, event_id: str | None = None,
                 occurred: str | None = None, occurrence: str | None = None, release: bool = False,
                 workers: int | None = None) -> dict | None:
    """What a deployment runs: compile the workspace as it is now, plan the campaign's step for the
    scheduled time (or `as_of`), and run it. Fire times outside the campaign's date range are skipped.

    Event triggers pass `user_id`, `event_id` and `occurred`: the run is for that user, at the event's
    time plus the trigger's delay; when that is still ahead, a run of this deployment is scheduled for
    it (idempotency key workspace:campaign:event, so a repeated event or a retry does not schedule twice).

    Journeys: after a step, each fire time of the next step (its delay past each send) gets a run of
    this deployment with `step`, `occurrence` and `as_of`, idempotency key workspace:campaign:step:occurrence:time,
    so a retry or a second run of the same step schedules nothing twice. A follow-up runs even when
    its time falls after the campaign's last date: the journey began inside them.

    `workers` (default: camp.toml's `[runtime] workers`, else 1): processes that share the run's batches on a
    PostgreSQL ledger (runtime.workers).

    Deferred deliveries (quiet hours, `tz user` local-time sends): after every run, each distinct time
    they fall due gets a run of this deployment with `release` (idempotency key workspace:campaign:release:time),
    which sends them and decides nothing (`release_step`)."""
    from compiler.schedule import in_dates
    from runtime.step import channels_of, runnable
    from runtime.warehouse import run_urls

    ws, program = _checked(workspace)
    c = program.campaigns.get(campaign)
    if c is None or (step and step not in [x.name for x in c.steps]):  # scheduled before the file changed
        get_run_logger().warning("%s: %s is no longer in %s; nothing to run (users waiting for it leave the "
                                 "journey)", campaign, f"step {step}" if c else "the campaign", workspace)
        return None
    when = _scheduled(as_of)
    target = _Target.of(ws.config.workspace.name, campaign)
    if release:
        data_url, ledger_url = run_urls(ws)
        summary = release_step(campaign, data_url, ledger_url, when.isoformat(), channels_of(ws))
        if summary is not None:
            _schedule_follow_ups(target, workspace, campaign, batch_size, summary.get("follow_ups", []))
            _schedule_releases(target, workspace, campaign, batch_size, summary.get("releases", []))
        return summary
    event = None
    if event_id:
        from datetime import UTC, timedelta

        from compiler.trigger import EventRun

        at = datetime.fromisoformat(occurred.replace("Z", "+00:00")) if occurred else when
        delay = timedelta(minutes=c.schedule.delay.minutes()) if c.schedule and c.schedule.delay else timedelta(0)
        when = at + delay
        if as_of is None and when > datetime.now(UTC) + timedelta(seconds=5):
            from prefect.deployments import run_deployment

            run_deployment(target.deployment, timeout=0, scheduled_time=when,
                           idempotency_key=f"{target.key}:{event_id}",
                           parameters={"workspace": workspace, "campaign": campaign, "step": step,
                                       "as_of": when.isoformat(), "batch_size": batch_size, "user_id": user_id,
                                       "event_id": event_id, "occurred": at.isoformat()})
            get_run_logger().info("%s: event %s for user %s; the message is due at %s", campaign, event_id,
                                  user_id, when)
            return None
        event = EventRun(event_id, str(user_id), at)
    if occurrence is None and not in_dates(c.schedule, when):
        get_run_logger().info("%s: %s is outside the campaign's dates; skipped", campaign, when)
        return None
    step_run = runnable(ws, program, c, when, step=step, occurrence=occurrence, event=event)
    if (ruling := arbitrate.settle(ws, program, campaign, when, step_run.ledger_url, step, event_id,
                                   occurrence)) is None:
        return None  # rivals of higher priority decide first: re-queued (docs/runtime.md, "Arbitration")
    summary = run_step(step_run.plan.model_dump(mode="json"), step_run.data_url, step_run.ledger_url,
                       when.isoformat(), False, batch_size, step_run.channels, step_run.redemptions, workspace,
                       workers or ws.config.runtime.workers, *spread_settings(ws))
    summary = arbitrate.noted(step_run.ledger_url, summary, ruling)
    assert summary is not None  # noted returns the summary it is given
    _schedule_follow_ups(target, workspace, campaign, batch_size, summary.get("follow_ups", []))
    _schedule_releases(target, workspace, campaign, batch_size, summary.get("releases", []))
    return summary


@dataclass(frozen=True)
class _Target:
    """Where a run schedules its campaign's later runs: this run's own deployment (by id; by the workspace's
    deployment name when the flow runs outside one), and the prefix of their idempotency keys, which Prefect keeps
    per flow, not per deployment: it names the workspace, so two workspaces' journeys never share a key."""

    deployment: str
    key: str

    @staticmethod
    def of(workspace_name: str, campaign: str) -> _Target:
        from runtime.deploy import deployment_name

        ctx = FlowRunContext.get()
        own = ctx.flow_run.deployment_id if ctx is not None and ctx.flow_run is not None else None
        return _Target(str(own) if own else f"camp-campaign/{deployment_name(workspace_name, campaign)}",
                       f"{workspace_name}:{campaign}")


def _schedule_releases(target: _Target, workspace: str, campaign: str, batch_size: int, due: list[str]) -> None:
    """A run of the deployment with `release` at each time deferred deliveries fall due. The idempotency key
    names the minute, so runs that defer users to the same time schedule it once; when that key's run has
    already finished (users deferred to a past minute by a late run), a fresh key schedules another."""
    from prefect.deployments import run_deployment

    for text in due:
        at = datetime.fromisoformat(text)
        base = f"{target.key}:release:{at:%Y-%m-%dT%H:%MZ}"
        for n in range(5):
            fr = run_deployment(target.deployment, timeout=0, scheduled_time=at,
                                idempotency_key=base if n == 0 else f"{base}:{n}",
                                parameters={"workspace": workspace, "campaign": campaign, "release": True,
                                            "as_of": at.isoformat(), "batch_size": batch_size})
            # prefect types run_deployment (sync-compatible) as returning a coroutine too; called from sync code
            # it returns the FlowRun
            if fr.state is None or not fr.state.is_final():  # pyright: ignore[reportAttributeAccessIssue]
                break
        get_run_logger().info("%s: deferred deliveries released at %s", campaign, at)


def _schedule_follow_ups(target: _Target, workspace: str, campaign: str, batch_size: int, due: list[dict]) -> None:
    from prefect.deployments import run_deployment

    for f in due:
        at = datetime.fromisoformat(f["at"])
        key = f"{target.key}:{f['step']}:{f['occurrence']}:{at:%Y-%m-%dT%H:%MZ}"
        run_deployment(target.deployment, timeout=0, scheduled_time=at, idempotency_key=key,
                       parameters={"workspace": workspace, "campaign": campaign, "step": f["step"],
                                   "occurrence": f["occurrence"], "as_of": at.isoformat(), "batch_size": batch_size})
        get_run_logger().info("%s: step %s of %s scheduled for %s", campaign, f["step"], f["occurrence"], at)
