"""Checked program + campaign + step + as-of time -> StepPlan: the contract the runtime executes.

The plan is JSON-serialisable and hashed (sha256 of its canonical JSON). It holds everything one
occurrence of one step needs and nothing the runtime should decide for itself: the recipients SQL
(for the ledger's dialect-independent warehouse), the arms (all / branches / variants) with their
resources and channel fallback chains, template sources, costs, budget, caps (campaign and
policy), quiet hours and arbitration. The runtime records `plan_hash` with every delivery, so a
ledger row always says which rules produced it. Same inputs, same plan, same hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, WEEKLY, rrule
from pydantic import BaseModel

from compiler import ir as I
from compiler import types as T
from compiler.clock import fire_instant
from compiler.ir import Dur
from compiler.program import Campaign, CapRule, ChannelRef, Coupon, Points, Program, RedPacket, Schedule, Step
from compiler.sql import AudienceSQL, CompileError
from compiler.templates import template_reads

PLAN_VERSION = 4  # 2: journeys (follow-up steps over a cohort, the next step to schedule); 3: reach_sql; 4: local_send
CRON_DAYS = {"monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 0}
EXCLUSIVE_HOLD = Dur(7, "d")  # a user stays with one campaign of an exclusive group this long after a send
ADDRESS_FIELDS = {"email": "email", "sms": "phone"}  # channel -> user field holding the address


class PlanError(Exception):
    """The step cannot be planned (a follow-up without its journey occurrence, a step with nothing to do, ...)."""


class Duration(BaseModel):
    value: int
    unit: str  # m h d w mo

    def dur(self) -> Dur:
        return Dur(self.value, self.unit)


def dur_plan(d: Dur | None) -> Duration | None:
    return Duration(value=d.value, unit=d.unit) if d is not None else None


class ChannelPlan(BaseModel):
    channel: str
    template: str | None = None
    template_source: str | None = None
    subject: str | None = None
    cost: Decimal = Decimal(0)
    address_field: str | None = None


class ResourcePlan(BaseModel):
    name: str
    kind: Literal["coupon", "points", "red_packet"]
    code: str | None = None
    title: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    min_spend: Decimal | None = None
    scope: dict[str, list] = {}
    usable_for: Duration | None = None
    usable_from: date | None = None
    usable_to: date | None = None
    forecast_cost: Decimal = Decimal(0)  # value x expected redemption


class ArmPlan(BaseModel):
    """What one group of recipients gets: everything (`all`), a branch (by index) or a variant (by share)."""

    kind: Literal["all", "branch", "variant"]
    name: str
    share: Decimal | None = None  # variants: fraction of the audience
    give: list[str] = []
    notify: list[ChannelPlan] = []  # the fallback chain, first allowed channel wins


class CapPlan(BaseModel):
    scope: Literal["campaign", "policy"]
    unit: str  # message, coupon or a channel
    count: int
    per: Duration | None = None
    unused: bool = False
    by: str | None = None
    tiers: dict[str, int] = {}
    default: int | None = None
    text: str


class SchedulePlan(BaseModel):
    kind: str
    tz: str
    crons: list[str] = []
    interval_minutes: int | None = None
    at: datetime | None = None
    event: str | None = None
    first: bool = False
    delay: Duration | None = None
    start: date | None = None
    end: date | None = None
    local: bool = False  # `tz user`: crons and `at` are in FIRST_ZONE (UTC+14); each user gets it at that wall time


class JourneyPlan(BaseModel):
    """A follow-up step: it reaches the users the previous step was sent to in the same occurrence,
    once `after` has passed since that send; `since` lists the steps whose send times its conditions
    read. The SQL reads them from the cohort table the runtime fills from the ledger."""

    previous: str
    earlier: list[str]  # every step before this one, in order (a reminder may speak of their coupon)
    after: Duration | None = None
    since: list[str] = []


class NextStep(BaseModel):
    """The step that follows this one: the runtime schedules it for `after` past each send."""

    step: str
    after: Duration | None = None


class StepPlan(BaseModel):
    version: int = PLAN_VERSION
    workspace: str
    timezone: str
    currency: str
    campaign: str
    title: str | None = None
    owner: str | None = None
    step: str
    occurrence: str
    audience_as_of: datetime
    dialect: str
    recipients_sql: str
    reach_sql: str | None = None  # current address and consent of the users in camp_reach (release, fallback)
    user_fields: dict[str, str]  # the user fields the runtime reads (templates, addresses, zone) -> type kind
    tz_field: str | None
    labels: list[str]
    consent_channels: list[str] | None  # None: the schema declares no consent table
    holdout: Decimal
    arms: list[ArmPlan]
    resources: dict[str, ResourcePlan]
    budget_total: Decimal | None = None
    budget_daily: Decimal | None = None
    caps: list[CapPlan]
    quiet: list[tuple[str, str]]
    priority: int
    exclusive: str | None = None
    exclusive_hold: Duration = Duration(value=EXCLUSIVE_HOLD.value, unit=EXCLUSIVE_HOLD.unit)
    schedule: SchedulePlan | None = None
    journey: JourneyPlan | None = None
    next: NextStep | None = None
    local_send: str | None = None  # `tz user`: the wall-clock time (ISO, no zone) each user gets it in their zone

    def canonical(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


def schedule_plan(s: Schedule) -> SchedulePlan:
    """WHEN as cron lines (daily, weekly and cron) or an interval, an instant, or an event."""
    out = SchedulePlan(kind=s.kind, tz=s.tz, start=s.start, end=s.end, event=s.event, first=s.first,
                       delay=dur_plan(s.delay), local=s.local)
    times = [tuple(int(x) for x in t.split(":")) for t in s.times]
    if s.kind in ("daily", "weekly"):
        dow = ",".join(str(CRON_DAYS[d]) for d in s.days) if s.kind == "weekly" else "*"
        out.crons = [f"{m} {h} * * {dow}" for h, m in times]
    elif s.kind == "cron":
        assert s.cron is not None  # a cron schedule keeps its expression
        out.crons = [s.cron]
    elif s.kind == "every":
        assert s.interval is not None  # an `every` schedule keeps its interval
        out.interval_minutes = s.interval.minutes()
    elif s.kind == "once":
        out.at = s.at
    return out


def in_dates(s: SchedulePlan | Schedule | None, when: datetime) -> bool:
    """Whether `when` falls on a day of the campaign's from/to range (in its zone); no range: always."""
    if s is None or not (s.start or s.end):
        return True
    day = when.astimezone(ZoneInfo(s.tz)).date()
    return not ((s.start and day < s.start) or (s.end and day > s.end))


def latest_fire(s: SchedulePlan | None, as_of: datetime) -> datetime | None:
    """The schedule's latest fire time at or before `as_of` (UTC), or None: no schedule (event triggers),
    not fired yet, or a fire time outside the campaign's dates."""
    if s is None:
        return None
    tz = ZoneInfo(s.tz)
    local = as_of.astimezone(tz)
    if s.crons and s.kind in ("daily", "weekly"):
        fires = [t for t in wall_fires(s, local.date() - timedelta(days=8), local.date()) if t <= as_of]
        if not fires:
            return None
        latest = max(fires)
    elif s.crons:
        fires = [croniter(c, local + timedelta(seconds=1)).get_prev(datetime) for c in s.crons]
        latest = max(fires).astimezone(UTC)
    elif s.at is not None:
        latest = s.at.astimezone(UTC)
        if latest > as_of:
            return None
    elif s.interval_minutes:
        origin = datetime.combine(s.start or date(2000, 1, 1), datetime.min.time(), tzinfo=tz).astimezone(UTC)
        steps = int((as_of - origin).total_seconds() // (s.interval_minutes * 60))
        if steps < 0:
            return None
        latest = origin + timedelta(minutes=steps * s.interval_minutes)
    else:
        return None
    return latest if in_dates(s, latest) else None


_RRULE_DAYS = {0: SU, 1: MO, 2: TU, 3: WE, 4: TH, 5: FR, 6: SA}  # cron day numbers (0 is sunday)


def wall_fires(s: SchedulePlan, first: date, last: date) -> list[datetime]:
    """A daily or weekly schedule's fire times on the local dates first..last, in UTC: dateutil's rrule over
    the wall clock of the schedule's zone, each time then placed in the zone the way Prefect's RRule schedule
    places it (`clock.fire_instant`): one fire per listed time and local date, also on the nights clocks change."""
    tz = ZoneInfo(s.tz)
    out = []
    for cron in s.crons:
        minute, hour, _, _, dow = cron.split()
        days = [_RRULE_DAYS[int(d)] for d in dow.split(",")] if dow != "*" else None
        rule = rrule(DAILY if days is None else WEEKLY, byweekday=days, byhour=int(hour), byminute=int(minute),
                     bysecond=0, dtstart=datetime.combine(first, time()))
        for naive in rule.between(datetime.combine(first, time()), datetime.combine(last, time(23, 59, 59)),
                                  inc=True):
            out.append(fire_instant(naive, tz))
    return sorted(out)


def local_send_of(s: SchedulePlan | None, occurrence_at: datetime) -> datetime | None:
    """A `tz user` occurrence's wall-clock time (no zone): when each user gets it in their own zone; its date is
    `today` in the audience. None for other schedules."""
    if s is None or not s.local:
        return None
    return occurrence_at.astimezone(ZoneInfo(s.tz)).replace(tzinfo=None)


def occurrence_of(s: SchedulePlan | None, as_of: datetime) -> datetime:
    """The scheduled time this run belongs to: the latest fire time at or before `as_of` (so every run
    between two fire times is the same occurrence and a rerun sends nothing twice); the as-of minute
    for event triggers, manual runs and as-of times outside the schedule."""
    return latest_fire(s, as_of) or as_of.astimezone(UTC).replace(second=0, microsecond=0)


def _money(m) -> Decimal | None:
    return m.amount if m is not None else None


def _resource(name: str, r: Coupon | Points | RedPacket, redemption: Decimal | None) -> ResourcePlan:
    if isinstance(r, Coupon):
        value = _money(r.value)
        return ResourcePlan(
            name=name, kind="coupon", code=r.code, title=r.title, value=value,
            currency=r.value.currency if r.value else None, min_spend=_money(r.min_spend),
            scope={k: list(v) for k, v in r.scope.items()},
            usable_for=dur_plan(r.usable_for),
            usable_from=r.usable_from, usable_to=r.usable_to,
            forecast_cost=(value or Decimal(0)) * (redemption if redemption is not None else 1))
    if isinstance(r, Points):
        return ResourcePlan(name=name, kind="points", value=r.amount)
    value = _money(r.value)
    return ResourcePlan(name=name, kind="red_packet", code=r.name, title=r.title, value=value,
                        currency=r.value.currency if r.value else None,
                        forecast_cost=(value or Decimal(0)) * (redemption if redemption is not None else 1))


def _cap(rule: CapRule, scope: Literal["campaign", "policy"]) -> CapPlan:
    per = f" per {rule.per}" if rule.per else ""
    what = "unused coupons" if rule.unused else {"message": "messages", "coupon": "coupons"}.get(rule.unit, rule.unit)
    text = f"cap {rule.count if not rule.by else 'by ' + rule.by} {what} per user{per} ({scope})"
    return CapPlan(scope=scope, unit=rule.unit, count=rule.count, unused=rule.unused, by=rule.by,
                   tiers=dict(rule.tiers), default=rule.default, text=text,
                   per=dur_plan(rule.per))


def _arm(kind: Literal["all", "branch", "variant"], name: str, actions, c: Campaign, costs, templates: Path, share=None) -> ArmPlan:
    give: list[str] = []
    chains = []
    for act in actions:
        if act.give == "*":
            give += [n for n in c.resources if n not in give]
        elif act.give:
            give.append(act.give)
        if act.notify:
            chains.append(act.notify)
    if len(chains) > 1:
        raise PlanError(f"step arm `{name}` notifies twice; one message per user per step (use a fallback `else`)")
    notify = [_channel(ref, costs, templates) for ref in (chains[0] if chains else [])]
    return ArmPlan(kind=kind, name=name, share=share, give=give, notify=notify)


def _channel(ref: ChannelRef, costs, templates: Path) -> ChannelPlan:
    source = (templates / ref.template).read_text(encoding="utf-8") if ref.template else None
    return ChannelPlan(channel=ref.channel, template=ref.template, template_source=source, subject=ref.subject,
                       cost=costs[ref.channel].amount if ref.channel in costs else Decimal(0),
                       address_field=ADDRESS_FIELDS.get(ref.channel))


def _user_fields_read(source: str | None, known: set[str]) -> set[str]:
    """The `user.X` a template reads; all fields when it reads `user` whole."""
    if not source:
        return set()
    reads = template_reads(source)
    if "user" in reads.whole:
        return set(known)
    return {attr for root, attr in reads.pairs if root == "user"} & known


def _step(c: Campaign, name: str | None) -> Step:
    if not c.steps:
        raise PlanError(f"campaign {c.name} has no steps")
    if name is None:
        return c.steps[0]
    for s in c.steps:
        if s.name == name:
            return s
    raise PlanError(f"campaign {c.name} has no step `{name}`; steps: {', '.join(s.name for s in c.steps)}")


@dataclass(frozen=True)
class EventRun:
    """The event an event-triggered run is for: its id (the occurrence), the user, when it happened."""

    event_id: str
    user_id: str
    occurred: datetime


def trigger_conditions(program: Program, c: Campaign, event: EventRun) -> list[I.Expr]:
    """`on E first`: the user's only E up to the run is this one; `on E if C`: the event (the user's E
    within a second of the reported time) satisfies C. Both are checked in the warehouse at run time."""
    s = c.schedule
    assert s is not None and s.event is not None  # called only for a campaign triggered by an event
    ev = program.schema.events[s.event]
    time = I.EventField(s.event, "time", ev.time_column, T.TIMESTAMP)
    out: list[I.Expr] = []
    if s.first:
        out.append(I.Cmp("=", I.Agg("count", s.event, None, None, None, T.NUMBER), I.Const(Decimal(1), T.NUMBER),
                         T.NUMBER))
    near = I.And((I.Cmp(">=", time, I.Const(event.occurred - timedelta(seconds=1), T.TIMESTAMP), T.TIMESTAMP),
                  I.Cmp("<=", time, I.Const(event.occurred + timedelta(seconds=1), T.TIMESTAMP), T.TIMESTAMP)))
    where = I.And((s.condition, near)) if s.condition is not None else near
    out.append(I.Agg("any", s.event, None, where, None, T.BOOL))
    return out


def since_entry(goal: I.Expr, entry: str) -> I.Expr:
    """The goal as a journey exit test: facts without a window of their own count only what happened
    since the journey's first step was sent to the user (an order before the touch is no conversion)."""
    return _since_entry(goal, entry)


def _since_entry(goal: Any, entry: str) -> Any:
    """since_entry on any IR dataclass (expressions and the windows and types inside them)."""
    if isinstance(goal, I.Agg):
        return dataclasses.replace(goal, window=I.Win("since", step=entry)) if goal.window is None else goal
    if not dataclasses.is_dataclass(goal) or isinstance(goal, (type, I.Win, I.Const, T.Type)):
        return goal
    changes = {}
    for f in dataclasses.fields(goal):
        v = getattr(goal, f.name)
        if isinstance(v, tuple):
            changes[f.name] = tuple(_since_entry(x, entry) for x in v)
        elif dataclasses.is_dataclass(v):
            changes[f.name] = _since_entry(v, entry)
    return dataclasses.replace(goal, **changes)


def journey_skips(c: Campaign, s: Step) -> list[tuple[str, I.Expr]]:
    """Why a user of a follow-up's cohort is skipped, first reason first: the campaign's goal reached
    since the journey began (they leave the journey), the step's `unless`, an `exclude` that now holds."""
    out: list[tuple[str, I.Expr]] = []
    if c.goal is not None:
        out.append(("goal reached", since_entry(c.goal, c.steps[0].name)))
    if s.unless is not None:
        out.append(("unless", s.unless))
    if c.excludes:
        out.append(("excluded", c.excludes[0] if len(c.excludes) == 1 else I.Or(tuple(c.excludes))))
    return out


def journey_plan(c: Campaign, s: Step) -> JourneyPlan | None:
    """What a follow-up step needs of its journey (None for a first step): the step before it, the
    delay, and the steps whose send times its conditions read."""
    index = c.steps.index(s)
    if index == 0:
        return None
    conds = [cond for _, cond in journey_skips(c, s)] + [cond for cond, _ in s.branches if cond is not None]
    since = sorted({n.step for cond in conds for n in I.walk(cond) if isinstance(n, I.Win) and n.op == "since" and n.step})
    return JourneyPlan(previous=c.steps[index - 1].name, earlier=[x.name for x in c.steps[:index]],
                       after=dur_plan(s.after), since=since)


def build_plan(program: Program, c: Campaign, as_of: datetime, dialect: str, templates: Path,
               step: str | None = None, workspace: str = "camp", event: EventRun | None = None,
               occurrence: str | None = None) -> StepPlan:
    """The plan of one occurrence of one step: the occurrence is the scheduled time `as_of` falls in,
    or, for an event-triggered run, the event (only its user, only when the trigger's conditions hold).

    A follow-up step (any step after the first) belongs to the journey `occurrence` of its first step
    and runs at `as_of` for the users whose previous step is `after` old by then (see JourneyPlan)."""
    s = _step(c, step)
    index = c.steps.index(s)
    nxt = c.steps[index + 1] if index + 1 < len(c.steps) else None
    schedule = schedule_plan(c.schedule) if c.schedule else None
    journey = journey_plan(c, s)
    if journey is not None:
        if occurrence is None:
            raise PlanError(f"step `{s.name}` follows `{journey.previous}`: it runs for one occurrence of "
                            "the journey (give its occurrence)")
        event = None
    occurrence_at = occurrence_of(schedule, as_of) if journey is None else as_of
    if event is not None:
        if c.schedule is None or c.schedule.kind != "event":
            raise PlanError(f"campaign {c.name} has no event trigger")
        occurrence_at = max(as_of, event.occurred) + timedelta(seconds=1)  # the audience sees the event itself
    costs = {**program.policy.costs, **c.costs}
    if s.variants:
        arms = [_arm("variant", n, acts, c, costs, templates, share=pct)
                for n, pct, acts in s.variants]
    elif s.branches:
        arms = [_arm("branch", f"branch{i + 1}" if cond is not None else "otherwise", acts, c, costs, templates)
                for i, (cond, acts) in enumerate(s.branches)]
    else:
        arms = [_arm("all", "all", s.actions, c, costs, templates)]
    if not any(a.give or a.notify for a in arms):
        raise PlanError(f"step `{s.name}` gives nothing and notifies no one")
    users = program.schema.users
    tz_field = users.tz_field.name if users and users.tz_field else None
    wanted = {tz_field} | {ch.address_field for a in arms for ch in a.notify}
    for a in arms:
        for ch in a.notify:
            wanted |= _user_fields_read(ch.template_source, set(users.fields) if users else set())
            wanted |= _user_fields_read(ch.subject, set(users.fields) if users else set())
    fields = {f: users.fields[f].type.kind for f in sorted(f for f in wanted if f is not None) if users and f in users.fields}
    channels = sorted({ch.channel for a in arms for ch in a.notify})
    caps = [_cap(r, "campaign") for r in c.caps] + [_cap(r, "policy") for r in program.policy.caps]
    caps = [cap for cap in caps if cap.unit in ("message", "coupon", *channels)]  # only caps this step can meet
    labels = sorted({cap.by for cap in caps if cap.by})
    local_send = local_send_of(schedule, occurrence_at) if journey is None and event is None else None
    sql = AudienceSQL(program, occurrence_at, dialect, cohort=journey is not None,
                      today=local_send.date() if local_send else None)
    try:
        query = sql.recipients(c, list(fields), labels, channels, [cond for cond, _ in s.branches],
                               trigger_conditions(program, c, event) if event else [],
                               event.user_id if event else None, journey_skips(c, s) if journey else None)
    except CompileError as exc:
        raise PlanError(str(exc)) from None
    reach = None
    addresses = sorted({ch.address_field for a in arms for ch in a.notify if ch.address_field} & set(fields))
    if channels and users is not None:  # re-read at release and fallback: consent or an address may be gone
        now = AudienceSQL(program, occurrence_at, dialect)
        reach = now.sql(now.reach(addresses, channels), pretty=False)
    quiet = [q for q in (program.policy.quiet, c.quiet) if q]
    if journey:
        assert occurrence is not None  # a follow-up step runs for its journey's occurrence
        occurrence_key = occurrence
    else:
        occurrence_key = f"event-{event.event_id}" if event else occurrence_at.strftime("%Y-%m-%dT%H:%MZ")
    return StepPlan(
        workspace=workspace, timezone=program.timezone, currency=program.currency, campaign=c.name, title=c.title,
        owner=c.owner, step=s.name,
        occurrence=occurrence_key, audience_as_of=occurrence_at,
        dialect=dialect, recipients_sql=sql.sql(query, pretty=False), reach_sql=reach, user_fields=fields, tz_field=tz_field,
        labels=labels, consent_channels=channels if program.schema.consent is not None else None,
        holdout=c.holdout, arms=arms,
        resources={n: _resource(n, r, c.redemption) for n, r in c.resources.items()},
        budget_total=_money(c.budget_total), budget_daily=_money(c.budget_daily), caps=caps,
        quiet=list(dict.fromkeys(quiet)), priority=c.priority, exclusive=c.exclusive, schedule=schedule,
        journey=journey, next=NextStep(step=nxt.name, after=dur_plan(nxt.after)) if nxt else None,
        local_send=local_send.isoformat(timespec="minutes") if local_send else None)
