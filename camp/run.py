"""`camp run`, `camp runs`, `camp ledger`: run campaign steps through Prefect and read the ledger."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

from camp.audience import checked, parse_as_of


def _quiet_prefect() -> None:
    """Prefect settings for camp's commands, each only where the user set nothing. The ephemeral API server
    migrates a fresh PREFECT_HOME on its first start (about 26 s on an idle 2-core machine, far more on a busy
    one) and Prefect gives up after 20 s by default: camp waits up to 3 minutes."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not os.environ.get("PREFECT_API_URL"):
        # the local API server (runtime.local_api, a subprocess that inherits this; its output goes to a log
        # file) is stopped when camp exits, and its task-run recorder logs the events it was still flushing as
        # ERROR tracebacks: events for Prefect's UI only (the ledger holds what was done), and a server failure
        # that matters fails camp's own call anyway
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_ROOT_LEVEL", "CRITICAL")  # its SQLAlchemy pool says the same
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


def run_run(path: Path, as_of: str | None, step: str | None, dry_run: bool, only: str | None, batch_size: int,
            data: str | None, ledger: str | None, progress: bool, occurrence: str | None = None,
            run_all: bool = False, release_only: bool = False, workers: int | None = None) -> int:
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, campaigns, _ = loaded
    if path.is_dir():
        campaigns = list(program.campaigns.values())
    if only:
        campaigns = [c for c in campaigns if c.name == only]
    if not campaigns:
        print(f"camp run: {path} declares no campaign{' ' + only if only else ''}", file=sys.stderr)
        return 1
    from compiler.plan import PlanError
    from runtime.step import redemptions_of, runnable

    when = parse_as_of(as_of, program.timezone)
    stores = open_stores("camp run", ws, data, ledger, "create demo data with `camp demo init`, or set [data] url in "
                         "camp.toml")
    if stores is None:
        return 1
    data_url, ledger_url, lg = stores
    workers = workers or ws.config.runtime.workers
    if workers > 1 and not dry_run:
        from runtime.workers import WorkersError, check_workers

        try:
            check_workers(workers, ledger_url)
        except WorkersError as exc:
            print(f"camp run: {exc}", file=sys.stderr)
            lg.close()
            return 2
    plans = []
    to_release = []
    if release_only:
        to_release, campaigns = sorted(campaigns, key=lambda c: (-c.priority, c.name)), []
    elif path.is_dir() and not run_all and step is None and not only:
        from camp.due import due_campaigns

        campaigns, skipped, to_release = due_campaigns(lg, campaigns, when)
        for name, why in skipped:
            print(f"camp run: skipped {name}: {why}")
        if not campaigns and not to_release:
            print(f"camp run: nothing in {path} is due at {when.isoformat()} (--all runs every campaign)")
            lg.close()
            return 0
    c = None  # the campaign being planned, named when planning fails
    try:
        for c in sorted(campaigns, key=lambda c: (-c.priority, c.name)):  # higher priority claims users first
            for o in _occurrences(lg, c, step, occurrence, when, program.timezone):
                plans.append(runnable(ws, program, c, when, step=step, occurrence=o, data=data, ledger=ledger).plan)
    except PlanError as exc:
        print(f"camp run: {c.name if c is not None else ''}: {exc}", file=sys.stderr)
        return 1
    finally:
        lg.close()
    _quiet_prefect()
    import logging

    from runtime import flows

    for name in ("prefect.task_runs", "prefect.flow_runs"):  # a failure is said by camp below, with what was sent
        logging.getLogger(name).setLevel(logging.CRITICAL)

    from contextlib import ExitStack

    from runtime.local_api import LocalAPIError, local_api

    try:
        api = local_api()  # no Prefect API configured: a local one, its output in a log file
    except LocalAPIError as exc:
        print(f"camp run: {exc}", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        if api is not None:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        return _run_plans(flows, ws, plans, [] if dry_run else to_release, when, data_url, ledger_url, dry_run,
                          batch_size, progress, redemptions_of(ws, program), workers)


def _run_plans(flows, ws, plans, to_release, when, data_url: str, ledger_url: str, dry_run: bool, batch_size: int,
               progress: bool, redemptions: dict | None, workers: int = 1) -> int:
    from runtime.step import channels_of

    channels = channels_of(ws)
    status = 0
    for c in to_release:
        try:
            with flows.run_settings():
                summary = flows.release_step(c.name, data_url, ledger_url, when.isoformat(), channels)
        except Exception as exc:  # noqa: BLE001 (shown to the user, the ledger keeps what was done)
            print(f"camp run: {c.name} release failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        if summary is None:
            print(f"camp run: {c.name}: no deferred deliveries are due at {when.isoformat()}")
            continue
        print(f"camp run: {c.name} — release of deferred deliveries due by {when.isoformat()}")
        print_summary(summary)
    for plan in plans:
        zone = plan.schedule.tz if plan.schedule else plan.timezone
        print(f"camp run: {plan.campaign} / {plan.step} @ {_shown(plan.occurrence, zone)} (plan {plan.hash[:12]})"
              + (" — dry run, nothing is sent or written" if dry_run else ""))
        with _progress(progress) as report:
            flows.progress = report
            try:
                with flows.run_settings():
                    summary = flows.run_step(plan.model_dump(mode="json"), data_url, ledger_url, when.isoformat(),
                                             dry_run, batch_size, channels, redemptions, str(ws.root), workers,
                                             *flows.spread_settings(ws))
            except Exception as exc:  # noqa: BLE001 (shown to the user, the ledger keeps what was done)
                done = getattr(exc, "camp_summary", None)
                sent = (done or {}).get("this_run", {}).get("sent", 0)
                print(f"camp run: {plan.campaign} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                if done is not None:
                    print(f"camp run: {plan.campaign} stopped after sending {sent:,} in this run; every delivery is "
                          "in the ledger, and a rerun of this occurrence sends the rest and nothing twice",
                          file=sys.stderr)
                    print_summary(done)
                status = 1
                continue
            finally:
                flows.progress = None
        print_summary(summary)
    return status


def _shown(occurrence: str, tz: str) -> str:
    """An occurrence as people read it: the wall-clock time in the campaign's zone, then the stored UTC key
    (`2026-12-01 10:00 Asia/Shanghai (2026-12-01T02:00Z)`); an event's occurrence as it is."""
    from datetime import UTC, datetime

    from camp.due import local_time

    try:
        at = datetime.strptime(occurrence, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    except ValueError:
        return occurrence
    return f"{local_time(at, tz)} ({occurrence})"


def _occurrences(lg, c, step: str | None, occurrence: str | None, when, zone: str) -> list[str] | list[None]:
    """[None] for a first step (the occurrence follows from the clock); for a follow-up, the journey
    occurrences with users due at `when` (or the one asked for)."""
    from compiler.journey import journey_plan
    from compiler.plan import PlanError
    from runtime.journey import due_occurrences

    s = next((x for x in c.steps if x.name == step), None)
    journey = journey_plan(c, s) if s is not None else None
    if journey is None:  # a first step (or an unknown one: build_plan says so)
        if occurrence:
            raise PlanError(f"step `{step}` is the journey's first: its occurrence follows from --as-of, "
                            "--occurrence is for the steps after it")
        return [None]
    assert s is not None and step is not None  # a journey plan is made for a named step
    if occurrence:
        return [_occurrence_key(occurrence, zone)]
    found = due_occurrences(lg, c.name, step, journey, when, zone)
    if not found:
        print(f"camp run: {c.name} / {step}: no one is due at {when.isoformat()} (it follows "
              f"`{journey.previous}`{' by ' + str(s.after) if s.after else ''})")
    return found


def _occurrence_key(text: str, zone: str) -> str:
    """--occurrence as the ledger keys it: a time (ISO 8601, with an offset or in the workspace's zone, or the key
    itself, `2026-11-27T02:00Z`) becomes its UTC key; anything else (an event's occurrence) is taken as it is."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return text
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(zone))
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


class _progress:
    """A progress bar on stderr while batches are sent (rich), nothing when off or not a terminal."""

    def __init__(self, on: bool):
        self.on = on and sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if not self.on:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        bar = self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), transient=True)
        bar.start()
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return report

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def print_summary(s: dict) -> None:
    """A run's summary as ops read it: what happened to the audience, what this run did, when deferred messages
    and follow-ups go out (in the workspace's zone), and what the cost is made of."""
    from runtime.ledger.status import Status

    statuses = s["statuses"]
    zone = s.get("timezone", "UTC")
    held = statuses.get(Status.HOLDOUT, 0)
    if s.get("release"):
        print(f"  audience        {s['audience']:>10,}")
    else:  # the numbers `camp audience` prints for the occurrence: matched minus excluded, holdout, final
        print(f"  audience        {s['audience']:>10,}   matched minus excluded, as `camp audience` counts them")
        print(f"  holdout         {held:>10,}")
        print(f"  final           {s['audience'] - held:>10,}   decided as follows")
    reasons = sorted(s["reasons"].items(), key=lambda kv: -kv[1])
    for status in (Status.SKIPPED, Status.SUPPRESSED, Status.DEFERRED, Status.BUDGET_EXHAUSTED, Status.PENDING,
                   Status.SENT, Status.FAILED):
        if statuses.get(status):
            label = {Status.PENDING: "to send"}.get(status, status.value)
            note = ""
            if status == Status.DEFERRED and s.get("releases"):
                note = f"   quiet hours or the user's local time; the first go out at {_at(s['releases'][0], zone)}"
            print(f"  {label:<16}{statuses[status]:>10,}{note}")
            for reason, n in reasons:  # each reason once, under its status, without repeating the status
                head, _, why = reason.partition(": ")
                if head == status:
                    print(f"    {why:<58}{n:>10,}")
    for reason, n in reasons:
        head, _, why = reason.partition(": ")
        if head not in statuses:  # moves between channels at release or fallback
            print(f"    {reason:<58}{n:>10,}")
    if s.get("release"):
        mine = s["this_run"]
        print(f"  released        {mine.get('released', 0):>10,} deferred deliveries, {mine.get('sent', 0):,} sent now")
    elif "this_run" in s:
        mine = s["this_run"]
        later = {k: v for k, v in mine.items() if k.startswith("suppressed at ")}  # re-checks at release/fallback
        decided = sum(v for k, v in mine.items() if k not in ("sent", "released", "failed") and k not in later)
        released = f"{mine['released']:,} released after quiet hours, " if mine.get("released") else ""
        earlier = " (the rest was done by earlier runs of this occurrence)" if decided < s["audience"] else ""
        print(f"  this run        {decided:>10,} decided now, {released}{mine.get('sent', 0):,} sent now{earlier}")
        for k, v in sorted(later.items()):
            print(f"                  {v:>10,} {k} (consent, address or a cap no longer allowed it)")
    if s.get("unknown_time_zones"):
        print(f"  users with an unknown time zone (workspace zone used): {s['unknown_time_zones']:,}")
    synced = s.get("coupon_sync") or {}
    if synced.get("redeemed") or synced.get("expired"):  # before deciding: caps saw the coupons' real state
        print(f"  coupons         {synced['redeemed']:>10,} redeemed and {synced.get('expired', 0):,} expired since the "
              "last sync (the shop's orders; `camp sync` shows the details)")
    if not s.get("release"):
        basis = s.get("forecast") or {}
        rates = ", ".join(f"{name} at {(Decimal(rate) * 100).normalize():f}% redemption" for name, rate in basis.items())
        what = f"a forecast: message costs plus {rates}" if rates else "message costs"
        if "points_cost" in s:
            what += f", points at {s['points_cost']} {s['currency']} each"
        print(f"  cost            {_money(s['cost']):>10} {s['currency']}   ({what})")
    if "spend" in s:
        sp, act = s["spend"], s["spend"]["actual"]
        print(f"  campaign spend  {_money(sp['forecast']):>10} {s['currency']}   reserved (forecast); actual "
              f"{_money(act['total'])}: coupons redeemed {_money(act['coupons'])}, points issued "
              f"{_money(act['points'])}, red packets paid {_money(act['red_packets'])}")
        beyond = sp.get("coupons_beyond_forecast") or {}
        if beyond:
            days = ", ".join(f"{d} {_money(v)}" for d, v in beyond.items())
            print(f"  beyond forecast {_money(str(sum(Decimal(v) for v in beyond.values()))):>10} {s['currency']}   "
                  f"redeemed coupons' discounts past their forecast, off each day's budget: {days}")
    if s.get("releases"):
        more = f" and {len(s['releases']) - 1} later times" if len(s["releases"]) > 1 else ""
        print(f"  next release    {_at(s['releases'][0], zone)}{more}: deployed, a release run is scheduled; by "
              f"hand, `camp run PATH --release --as-of {s['releases'][0]}` or any run after it")
    for f in s.get("follow_ups", [])[:5]:
        print(f"  next            {f['step']} (journey {f['occurrence']}) at {_at(f['at'], zone)}")
    if len(s.get("follow_ups", [])) > 5:
        print(f"  next            ... and {len(s['follow_ups']) - 5} more fire times")
    if "budget_left" in s:
        b = s["budget_left"]
        print(f"  budget left     total {_money(b['total']) if b['total'] else 'unlimited'}, "
              f"today {_money(b['today']) if b['today'] else 'unlimited'}")
    if "left_out_by_budget" in s:
        lo = s["left_out_by_budget"]
        print(f"  left out by the budget (first): {', '.join(lo['first_users'])} — {lo['rule']}")


def _at(text: str, zone: str) -> str:
    """An ISO instant as people read it: wall-clock time in the workspace's zone."""
    from datetime import datetime

    from camp.due import local_time

    return local_time(datetime.fromisoformat(text), zone)


def _money(text: str) -> str:
    return str(Decimal(text).quantize(Decimal("0.01")))


def open_stores(cmd: str, ws, data: str | None, ledger: str | None, hint: str):
    """(data_url, ledger_url, the ledger, migrated) for a command that reads the warehouse and writes the ledger;
    None after saying which of the two cannot be opened (`hint`: how to point at the data)."""
    from runtime.warehouse import connect, run_urls

    data_url, ledger_url = run_urls(ws, data, ledger)
    try:
        connect(data_url, read_only=True).close()
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        print(f"{cmd}: cannot open the data {data_url}: {exc}", file=sys.stderr)
        print(f"  hint: {hint}", file=sys.stderr)
        return None
    lg = _ledger_or_say(cmd, ledger_url)
    return None if lg is None else (data_url, ledger_url, lg)


def _ledger_or_say(cmd: str, url: str):
    """The ledger, migrated; None after saying why it cannot be opened."""
    from runtime.ledger import open_ledger

    try:
        ledger = open_ledger(url)
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        from camp.read_ledger import cannot_open

        cannot_open(cmd, url, exc)
        return None
    return ledger


def run_runs(path: Path, ledger: str | None, limit: int, as_json: bool) -> int:
    from camp.read_ledger import workspace_ledger

    lg = workspace_ledger("camp runs", path, ledger, "[]" if as_json else None)
    if isinstance(lg, int):
        return lg
    rows = lg.recent_runs(limit)
    lg.close()
    if as_json:
        print(json.dumps([{"run_id": r.run_id, "campaign": r.campaign, "step": r.step, "occurrence": r.occurrence,
                           "status": r.status, "started_at": str(r.started_at),
                           "finished_at": str(r.finished_at) if r.finished_at else None, "plan_hash": r.plan_hash,
                           "summary": json.loads(r.summary) if r.summary else None} for r in rows],
                         ensure_ascii=False, indent=1))
        return 0
    from camp.tables import new_table, print_table

    table = new_table(["run", "campaign", "step", "occurrence", "status", "sent", "cost", "started"], right={5, 6})
    for r in rows:
        s = json.loads(r.summary) if r.summary else {}
        # what this run sent (a rerun or a release sends only what earlier runs left); the occurrence's cost
        sent = s.get("this_run", {}).get("sent", 0) if s else ""
        table.add_row(r.run_id, r.campaign, r.step, r.occurrence, r.status, f"{sent:,}" if sent != "" else "",
                      s.get("cost", "") if not s.get("release") else "", f"{r.started_at:%Y-%m-%d %H:%M:%S}")
    print_table(table)
    return 0


def run_ledger(path: Path, ledger: str | None, campaign: str | None, status: str | None, user: str | None,
               limit: int, as_json: bool) -> int:
    from camp.read_ledger import workspace_ledger

    lg = workspace_ledger("camp ledger", path, ledger, "[]" if as_json else None)
    if isinstance(lg, int):
        return lg
    rows = lg.deliveries(campaign, status, user, limit)
    lg.close()
    if as_json:
        print(json.dumps([r._asdict() for r in rows], default=str, ensure_ascii=False, indent=1))
        return 0
    from camp.tables import new_table, print_table

    table = new_table(["campaign", "step", "occurrence", "user", "channel", "status", "cost", "reason"], right={6})
    for r in rows:
        table.add_row(r.campaign, r.step, r.occurrence, r.user_id, r.channel or "-", r.status, f"{float(r.cost):.2f}",
                      r.reason or "")
    print_table(table)
    return 0
