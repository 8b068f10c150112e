"""A campaign's CampaignPlan + an as-of time (or an event, or a journey's occurrence) -> the StepPlan of one
occurrence of one step: the occurrence it belongs to, the recipients SQL compiled at that occurrence, the step's
arms, and the caps, user fields and labels that step needs.

    build_plan(program, campaign, as_of, dialect, templates, step, workspace, event, occurrence) -> StepPlan
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from compiler.campaign_plan import campaign_plan
from compiler.journey import journey_skips
from compiler.plan import CampaignPlan, PlanError, PlannedStep, StepPlan
from compiler.program import Campaign, Program, Step
from compiler.schedule import local_send_of, occurrence_of
from compiler.sql import AudienceSQL, CompileError
from compiler.trigger import EventRun, trigger_conditions


def build_plan(program: Program, c: Campaign, as_of: datetime, dialect: str, templates: Path,
               step: str | None = None, workspace: str = "camp", event: EventRun | None = None,
               occurrence: str | None = None) -> StepPlan:
    """The plan of one occurrence of one step: the occurrence is the scheduled time `as_of` falls in,
    or, for an event-triggered run, the event (only its user, only when the trigger's conditions hold).

    A follow-up step (any step after the first) belongs to the journey `occurrence` of its first step
    and runs at `as_of` for the users whose previous step is `after` old by then (see JourneyPlan).
    Everything but the occurrence and the SQL comes from the campaign's CampaignPlan."""
    s = _step(c, step)
    cplan = campaign_plan(program, c, dialect, templates, workspace)
    planned = next(p for p in cplan.steps if p.name == s.name)
    return _step_plan(cplan, planned, program, c, s, as_of, event, occurrence)


def _step_plan(cplan: CampaignPlan, planned: PlannedStep, program: Program, c: Campaign, s: Step, as_of: datetime,
               event: EventRun | None, occurrence: str | None) -> StepPlan:
    schedule, journey = cplan.schedule, planned.journey
    if journey is not None:
        if occurrence is None:
            raise PlanError(f"step `{s.name}` follows `{journey.previous}`: it runs for one occurrence of "
                            "the journey (give its occurrence)")
        event = None
    occurrence_at = occurrence_of(schedule, as_of) if journey is None else as_of
    if event is not None:
        if schedule is None or schedule.kind != "event":
            raise PlanError(f"campaign {c.name} has no event trigger")
        occurrence_at = max(as_of, event.occurred) + timedelta(seconds=1)  # the audience sees the event itself
    if planned.problem is not None:
        raise PlanError(planned.problem)
    arms = planned.arms
    users = program.schema.users
    tz_field = users.tz_field.name if users and users.tz_field else None
    wanted = {tz_field} | {ch.address_field for a in arms for ch in a.notify} | set(planned.reads)
    fields = {f: users.fields[f].type.kind for f in sorted(f for f in wanted if f is not None) if users and f in users.fields}
    channels = sorted({ch.channel for a in arms for ch in a.notify})
    caps = [cap for cap in cplan.caps if cap.unit in ("message", "coupon", *channels)]  # only caps this step can meet
    labels = sorted({cap.by for cap in caps if cap.by})
    local_send = local_send_of(schedule, occurrence_at) if journey is None and event is None else None
    sql = AudienceSQL(program, occurrence_at, cplan.dialect, cohort=journey is not None,
                      today=local_send.date() if local_send else None, manual_tags=True)
    try:
        query = sql.recipients(c, list(fields), labels, channels, [cond for cond, _ in s.branches],
                               trigger_conditions(program, c, event) if event else [],
                               event.user_id if event else None, journey_skips(c, s) if journey else None)
    except CompileError as exc:
        raise PlanError(str(exc)) from None
    reach = None
    addresses = sorted({ch.address_field for a in arms for ch in a.notify if ch.address_field} & set(fields))
    if channels and users is not None:  # re-read at release and fallback: consent or an address may be gone
        now = AudienceSQL(program, occurrence_at, cplan.dialect)
        reach = now.sql(now.reach(addresses, channels), pretty=False)
    if journey:
        assert occurrence is not None  # a follow-up step runs for its journey's occurrence
        occurrence_key = occurrence
    else:
        occurrence_key = f"event-{event.event_id}" if event else occurrence_at.strftime("%Y-%m-%dT%H:%MZ")
    return StepPlan(
        workspace=cplan.workspace, timezone=cplan.timezone, currency=cplan.currency, campaign=cplan.campaign,
        title=cplan.title, owner=cplan.owner, step=s.name, occurrence=occurrence_key, audience_as_of=occurrence_at,
        dialect=cplan.dialect, recipients_sql=sql.sql(query, pretty=False), reach_sql=reach, user_fields=fields,
        tz_field=tz_field, labels=labels, consent_channels=channels if program.schema.consent is not None else None,
        holdout=cplan.holdout, arms=arms, resources=cplan.resources, budget_total=cplan.budget_total,
        budget_daily=cplan.budget_daily, caps=caps, quiet=cplan.quiet, priority=cplan.priority,
        exclusive=cplan.exclusive, schedule=schedule, journey=journey, next=planned.next,
        local_send=local_send.isoformat(timespec="minutes") if local_send else None, redeemed=sql.redeemed_codes(),
        tags=sql.tag_names(), history=sql.history_since())


def _step(c: Campaign, name: str | None) -> Step:
    if not c.steps:
        raise PlanError(f"campaign {c.name} has no steps")
    if name is None:
        return c.steps[0]
    for s in c.steps:
        if s.name == name:
            return s
    raise PlanError(f"campaign {c.name} has no step `{name}`; steps: {', '.join(s.name for s in c.steps)}")
