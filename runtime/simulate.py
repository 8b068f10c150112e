"""A workspace and a period -> every run its deployments would make in it, played in time order against a scratch
ledger by the real engine, without Prefect and without sending (`camp simulate`).

    simulate(ws, program, start, end, data_url, ledger_url, folder) -> Simulation

What is played, as the deployed `camp-campaign` flow would (runtime/flows.py), each at its own clock:
  * every fire time of each scheduled campaign in [start, end) (compiler.schedule.fires_between);
  * each event of an event-triggered campaign's event in the period, replayed from the warehouse
    (runtime.sim_events), at the event's time plus the trigger's delay, for that user;
  * each follow-up step a run makes due (its summary's `follow_ups`), at its fire time;
  * each release of deferred deliveries (quiet hours, `tz user`) a run leaves (its summary's `releases`).
Runs due at the same minute go releases first, then first steps and events (higher priority first, then by
name: what arbitration orders), then follow-ups. What falls due at or after `end` is not played; the report
counts it.

Each run is `runtime.engine.run_through` (or a release run) on the scratch ledger (runtime.sim_ledger): the
decision engine, caps, budgets, exclusive groups and quiet hours of a real run, and the ledger rows it writes.
Every channel is the scratch ledger's outbox, so nothing leaves the machine and every message a channel would
take counts as sent. Coupon redemptions are synced from the shop's orders before each run, as a real run does.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from compiler.config import Redemptions
from compiler.plan import PlanError
from compiler.schedule import fires_between, in_dates, schedule_plan
from compiler.trigger import EventRun
from runtime import engine
from runtime.context import Run
from runtime.coupon_sync import sync_coupons
from runtime.release import release
from runtime.sim_events import replayed_events
from runtime.sim_ledger import drop_scratch, open_scratch, scratch_ledger
from runtime.step import redemptions_of, runnable
from runtime.summary import release_summary
from runtime.warehouse import kept_open

RELEASE, FIRST, FOLLOW_UP = 0, 1, 2  # the order of runs due at the same minute

@dataclass(frozen=True)
class Played:
    """One simulated run: what ran, at which clock, and its summary's counts."""

    kind: str  # "step", "event", "follow-up", "release"
    campaign: str
    step: str
    occurrence: str
    at: datetime
    run_id: str
    statuses: dict

@dataclass
class Simulation:
    """What `simulate` did: the scratch ledger (for the report), the runs, the events replayed per campaign, the
    runs that fell due after the period, and plans that could not be built."""

    ledger_url: str
    start: datetime
    end: datetime
    runs: list[Played] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    after_end: dict[str, int] = field(default_factory=dict)  # campaign -> runs due at or after `end`
    problems: list[str] = field(default_factory=list)
    not_played: list[tuple[str, str]] = field(default_factory=list)  # (campaign, why)

    def close(self) -> None:
        """The scratch ledger given up (an in-memory one's memory freed); read the report before."""
        drop_scratch(self.ledger_url)


# Users decided per batch (one decision transaction) in a simulation. A real run's 10,000 bound what a crash can undo
# and what a worker takes; the scratch ledger has no workers and nothing to recover, and decisions do not depend on
# where batches end (tests/runtime/test_simulate.py), so a daily digest to 79,000 users is one batch, not eight: a
# ninth of the ledger statements, about 8% of a simulated month.
BATCH = 100_000


def simulate(ws, program, start: datetime, end: datetime, data_url: str, ledger_url: str, folder: Path | None = None,
             batch: int = BATCH, progress: Callable[[datetime, str], None] | None = None) -> Simulation:
    """Play [start, end) on a scratch copy of the ledger at `ledger_url` (in memory, or in `folder`, else a new
    temporary folder, which the caller removes; `Simulation.close` gives the scratch ledger up)."""
    with kept_open(data_url):  # the shop is only read: its file opened once, a session per query
        return _play(ws, program, start, end, data_url, ledger_url, folder, batch, progress)


def _play(ws, program, start: datetime, end: datetime, data_url: str, ledger_url: str, folder: Path | None,
          batch: int, progress: Callable[[datetime, str], None] | None) -> Simulation:
    where = folder or Path(tempfile.mkdtemp(prefix="camp-simulate-"))
    url = scratch_ledger(ledger_url, where)
    try:
        return _played(ws, program, start, end, data_url, url, batch, progress)
    except BaseException:
        drop_scratch(url)
        raise


def _played(ws, program, start: datetime, end: datetime, data_url: str, url: str, batch: int,
            progress: Callable[[datetime, str], None] | None) -> Simulation:
    sim = Simulation(url, start, end)
    queue: list[tuple] = []
    seen: set[tuple] = set()

    def push(at: datetime, order: int, c, step: str | None, occurrence: str | None, event: EventRun | None) -> None:
        key = (at, order, c.name, step, occurrence, event.event_id if event else None)
        if key in seen:
            return
        seen.add(key)
        if at >= end:
            sim.after_end[c.name] = sim.after_end.get(c.name, 0) + 1
            return
        tie = event.event_id if event else ""
        heapq.heappush(queue, (at, order, -c.priority, c.name, step or "", occurrence or "", tie, len(seen),
                               (c, step, occurrence, event)))

    for c in program.campaigns.values():
        if c.schedule is None:
            sim.not_played.append((c.name, "has no WHEN"))
            continue
        sp = schedule_plan(c.schedule)
        if sp.kind == "event":
            events = replayed_events(program, c, data_url, start, end)
            sim.events[c.name] = len(events)
            delay = c.schedule.delay.minutes() if c.schedule.delay else 0

            for e in events:
                at = e.occurred + timedelta(minutes=delay)
                if in_dates(c.schedule, at):
                    push(at, FIRST, c, None, None, e)
            continue
        for t in fires_between(sp, start, end):
            push(t, FIRST, c, None, None, None)

    channels = _outbox_only(ws)
    redemptions = redemptions_of(ws, program)
    lg = open_scratch(url)
    try:
        while queue:
            item = heapq.heappop(queue)
            at, order = item[0], item[1]
            c, step, occurrence, event = item[-1]
            if progress is not None:
                progress(at, c.name)
            if redemptions and order != RELEASE:
                sync_coupons(lg, data_url, Redemptions.model_validate(redemptions), at)
            if order == RELEASE:
                summary = _release(lg, c.name, data_url, at, channels, sim)
            else:
                try:
                    plan = runnable(ws, program, c, at, step=step, occurrence=occurrence, event=event, data=data_url,
                                    ledger=url).plan
                except PlanError as exc:
                    sim.problems.append(f"{c.name} at {at.isoformat()}: {exc}")
                    continue
                run = Run(plan, lg, data_url, at, channel_config=channels)
                try:
                    summary = engine.run_through(run, batch)
                finally:
                    run.close()
                kind = "event" if event else "follow-up" if order == FOLLOW_UP else "step"
                sim.runs.append(Played(kind, c.name, plan.step, plan.occurrence, at, run.run_id,
                                       dict(summary.get("this_run", {}))))
            if summary is None:
                continue
            for f in summary.get("follow_ups", []):
                push(datetime.fromisoformat(f["at"]), FOLLOW_UP, c, f["step"], f["occurrence"], None)
            for t in summary.get("releases", []):
                push(datetime.fromisoformat(t), RELEASE, c, None, None, None)
    finally:
        lg.close()
    return sim

def _release(lg, campaign: str, data_url: str, at: datetime, channels: dict, sim: Simulation) -> dict | None:
    """A release-only run (what `camp-release` does, without Prefect); None when nothing is due."""
    run = engine.release_run(lg, campaign, data_url, at, channels)
    if run is None:
        return None
    try:
        engine.start(run)
        release(run)
        summary = release_summary(run)
        engine.finish(run, summary)
    finally:
        run.close()
    sim.runs.append(Played("release", campaign, run.plan.step, run.plan.occurrence, at, run.run_id,
                           dict(summary.get("this_run", {}))))
    return summary

def _outbox_only(ws) -> dict:
    """Every channel of camp.toml (and `console`) as the scratch ledger's outbox: nothing is sent."""
    names = set(ws.config.channels) | {"console"}
    return {name: {"kind": "outbox", "settings": {}} for name in names}
