"""Campaign plans -> Prefect deployments: one per campaign, a stable name, tags to find them again,
schedules from WHEN in the campaign's time zone and date range.

    specs(root, program)          -> [DeploymentSpec]   (pure: what should exist)
    diff(specs, deployed)          -> [Change]           (create / update / delete / unchanged)
    apply(changes, work_pool)                            (writes to the Prefect API)

The workspace's `materialize` declarations get one deployment per time of day, running the `camp-materialize`
flow daily in the workspace's zone (`materialize_specs`). Every campaign's deployment runs the generic
`camp-campaign` flow with the workspace path and the campaign
name as parameters; the flow compiles the plan when it fires, so a deployment never carries a
stale plan. Each spec carries a fingerprint: the hash of the campaign's time-independent plan
(compiler.campaign_plan) and of each step's part of it, stored in the deployment's description, so an
unchanged campaign is not redeployed and a changed one says which steps changed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.campaign_plan import campaign_plan
from compiler.plan import SchedulePlan
from compiler.program import Alert, Program
from compiler.schedule import CRON_DAYS, schedule_plan

if TYPE_CHECKING:  # prefect is imported where it is used: `camp check` never loads it
    from prefect.events.schemas.automations import TriggerTypes
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes

ANCHOR = date(2026, 1, 1)  # DTSTART of schedules without a start date: fixed, so a redeploy changes nothing
_RRULE_DAYS = {str(n): day[:2].upper() for day, n in CRON_DAYS.items()}  # cron day number -> RRULE BYDAY


@dataclass
class DeploymentSpec:
    name: str  # deployment_name(workspace, campaign): stable across deploys
    campaign: str
    tags: list[str]
    schedules: list[dict]  # {"rrule"|"cron"|"interval", "timezone", ...}: plain data, comparable
    parameters: dict
    fingerprint: str
    steps: dict[str, str] = field(default_factory=dict)  # step -> the hash of its part of the campaign plan
    triggers: list[dict] = field(default_factory=list)  # {"event": name}: Prefect event triggers
    note: str = ""
    flow: str = "campaign"  # the flow it runs: campaign (camp-campaign), alert (camp-alert; `campaign` is then the
    # alert's name) or materialize (camp-materialize)
    source: dict = field(default_factory=dict)  # code_source(): {} this host, {"git", "commit"} or {"path"}

    @property
    def description(self) -> str:
        return json.dumps({"camp": {"campaign": self.campaign, "fingerprint": self.fingerprint,
                                    "steps": self.steps, "order": list(self.steps), "triggers": self.triggers,
                                    **({"flow": self.flow} if self.flow != "campaign" else {}),
                                    **({"source": self.source} if self.source else {})}},
                          sort_keys=True)


def workspace_tag(name: str) -> str:
    return f"camp-workspace:{name}"


_BANNED = str.maketrans(dict.fromkeys("/%&<>", "_"))  # characters Prefect refuses in a deployment name


def deployment_name(workspace: str, campaign: str) -> str:
    """The campaign's deployment, named with its workspace: Prefect names deployments per flow, and every
    campaign runs the one `camp-campaign` flow, so a bare campaign name would let a second workspace on the same
    server (staging beside production, a colleague's copy) take over the first's deployment and its runs."""
    return f"{campaign}@{workspace}".translate(_BANNED)


def schedules_of(s: SchedulePlan) -> list[dict]:
    """WHEN as Prefect schedules in the campaign's zone. daily/weekly/once become RRULEs with DTSTART
    and UNTIL, so a `from .. to ..` range is part of the schedule; cron and intervals cannot carry a
    range, so the flow skips fire times outside it."""
    start = s.start or ANCHOR
    until = f";UNTIL={s.end.strftime('%Y%m%d')}T235959" if s.end else ""
    out = []
    if s.kind in ("daily", "weekly"):
        for cron in s.crons:
            minute, hour, _, _, dow = cron.split()
            by = ";BYDAY=" + ",".join(_RRULE_DAYS[d] for d in dow.split(",")) if s.kind == "weekly" else ""
            freq = "WEEKLY" if s.kind == "weekly" else "DAILY"
            out.append({"rrule": f"DTSTART:{start.strftime('%Y%m%d')}T{int(hour):02d}{int(minute):02d}00\n"
                                 f"RRULE:FREQ={freq}{by}{until}", "timezone": s.tz})
    elif s.kind == "once" and s.at is not None:
        from zoneinfo import ZoneInfo

        local = s.at.astimezone(ZoneInfo(s.tz))
        out.append({"rrule": f"DTSTART:{local.strftime('%Y%m%dT%H%M%S')}\nRRULE:FREQ=DAILY;COUNT=1",
                    "timezone": s.tz})
    elif s.kind == "cron":
        out.extend({"cron": c, "timezone": s.tz} for c in s.crons)
    elif s.kind == "every" and s.interval_minutes:
        out.append({"interval": s.interval_minutes * 60, "timezone": s.tz,
                    "anchor": datetime.combine(start, datetime.min.time()).isoformat()})
    return out


class SourceError(ValueError):
    """`[deploy]` cannot be carried out here (the message says why)."""


def code_source(root: Path, deploy) -> tuple[str, dict]:
    """camp.toml's `[deploy]` (compiler.config.DeploySection) -> (the flow's `workspace` parameter, the source as
    plain data). Nothing declared: the absolute path on this host ({}), for workers on this host only. `source =
    "git"`: the workspace's folder relative to its repository, cloned at the commit checked out now ({"git": the
    remote's URL, "commit": sha}). `path`: the workspace relative to that shared folder ({"path": folder})."""
    if deploy.path is not None:
        folder = Path(deploy.path)
        try:
            rel = root.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            raise SourceError(f"the workspace {root.resolve()} is not inside [deploy] path {deploy.path}") from None
        return rel or ".", {"path": str(folder)}
    if deploy.source == "git":
        from compiler.git_source import GitSourceError, git_source

        try:
            g = git_source(root, deploy.remote)
        except GitSourceError as exc:
            raise SourceError(str(exc)) from None
        return g.folder, {"git": g.repository, "commit": g.commit}
    return str(root.resolve()), {}


def specs(root: Path, program: Program, workspace: str, template_dir: Path,
          source: tuple[str, dict] | None = None) -> list[DeploymentSpec]:
    """What should exist. `source` (code_source()): the workspace parameter and where workers find it; default
    this host's absolute path."""
    param, where = source or (str(root.resolve()), {})
    return [dataclasses.replace(s, parameters={**s.parameters, "workspace": param}, source=where)
            for s in _specs(root, program, workspace, template_dir)]


def _specs(root: Path, program: Program, workspace: str, template_dir: Path) -> list[DeploymentSpec]:
    out = []
    for c in sorted(program.campaigns.values(), key=lambda c: c.name):
        plan = campaign_plan(program, c, "duckdb", template_dir, workspace)
        steps = {s.name: plan.step_hash(s.name) for s in plan.steps}
        schedules = schedules_of(plan.schedule) if plan.schedule else []
        triggers = [{"event": plan.schedule.event}] if plan.schedule and plan.schedule.kind == "event" else []
        note = "" if schedules or triggers or plan.schedule is None else "no schedule"
        out.append(DeploymentSpec(
            name=deployment_name(workspace, c.name), campaign=c.name,
            tags=["camp", workspace_tag(workspace), f"camp-campaign:{c.name}"],
            schedules=schedules, parameters={"workspace": str(root.resolve()), "campaign": c.name},
            fingerprint=plan.hash, steps=steps, triggers=triggers, note=note))
    for a in sorted(program.alerts.values(), key=lambda a: a.name):
        schedule = schedule_plan(a.schedule) if a.schedule is not None else None
        out.append(DeploymentSpec(
            name=deployment_name(workspace, a.name), campaign=a.name,
            tags=["camp", workspace_tag(workspace), f"camp-alert:{a.name}"],
            schedules=schedules_of(schedule) if schedule else [],
            parameters={"workspace": str(root.resolve()), "alert": a.name},
            fingerprint=_alert_hash(a), flow="alert"))
    return out + materialize_specs(root, program, workspace)


def materialize_specs(root: Path, program: Program, workspace: str) -> list[DeploymentSpec]:
    """One deployment per time of day of the workspace's `materialize` declarations: the `camp-materialize`
    flow with the names materialised then, daily at that time in the workspace's zone. Its name,
    `materialize-HHMM`, cannot be a campaign's (a campaign name has no `-`)."""
    import hashlib

    by_time: dict[str, list[str]] = {}
    for m in program.materialized.values():
        by_time.setdefault(m.at, []).append(m.name)
    out = []
    for at, names in sorted(by_time.items()):
        label = f"materialize-{at.replace(':', '')}"
        hh, mm = at.split(":")
        fingerprint = hashlib.sha256(json.dumps({"names": sorted(names), "at": at, "tz": program.timezone},
                                                sort_keys=True).encode()).hexdigest()
        out.append(DeploymentSpec(
            name=deployment_name(workspace, label), campaign=label,
            tags=["camp", workspace_tag(workspace), "camp-materialize"],
            schedules=[{"rrule": f"DTSTART:{ANCHOR.strftime('%Y%m%d')}T{int(hh):02d}{int(mm):02d}00\nRRULE:FREQ=DAILY",
                        "timezone": program.timezone}],
            parameters={"workspace": str(root.resolve()), "names": sorted(names)}, fingerprint=fingerprint,
            flow="materialize"))
    return out


def _alert_hash(a: Alert) -> str:
    """What an alert's deployment depends on: its schedule, condition, threshold, team and sample."""
    import hashlib

    text = repr((a.schedule and schedule_plan(a.schedule).model_dump_json(), a.audience, a.excludes, a.measure,
                 a.op, str(a.value), a.team, a.sample))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Change:
    action: str  # create | update | delete | unchanged
    name: str  # the campaign's (its deployment is named deployment_name(workspace, campaign))
    spec: DeploymentSpec | None = None
    deployment_id: str | None = None
    changed_steps: list[str] = field(default_factory=list)
    old_order: list[str] = field(default_factory=list)  # the deployed campaign's steps, in order


def diff(wanted: list[DeploymentSpec], deployed: list[dict]) -> list[Change]:
    """`deployed`: [{"id", "name", "description", "schedules"}] of this workspace's deployments."""
    have = {d["name"]: d for d in deployed}
    out = []
    for spec in wanted:
        d = have.pop(spec.name, None)
        if d is None:
            out.append(Change("create", spec.campaign, spec))
            continue
        old = _described(d.get("description"))
        same = old.get("fingerprint") == spec.fingerprint and _canon(d.get("schedules")) == _canon(spec.schedules) \
            and old.get("triggers", []) == spec.triggers and old.get("source", {}) == spec.source
        changed = sorted(step for step, fp in old.get("steps", {}).items() if spec.steps.get(step) != fp)
        out.append(Change("unchanged" if same else "update", spec.campaign, spec, d["id"], changed,
                          old.get("order") or list(spec.steps)))
    for name, d in sorted(have.items()):
        old = _described(d.get("description"))
        out.append(Change("delete", old.get("campaign") or name, None, d["id"], sorted(old.get("steps", {})),
                          old.get("order") or sorted(old.get("steps", {}))))
    return out


def _canon(schedules: list[dict] | None) -> list[str]:
    """Schedules compared as a set: the API returns them in its own order."""
    return sorted(json.dumps(s, sort_keys=True) for s in schedules or [])


def _described(text: str | None) -> dict:
    try:
        return json.loads(text or "{}").get("camp", {})
    except (ValueError, AttributeError):
        return {}


EVENT_PREFIX = "camp.event."  # `camp emit orders` emits camp.event.orders about resource camp.user.<id>


def trigger_objects(spec: DeploymentSpec) -> list[DeploymentTriggerTypes | TriggerTypes]:
    """Prefect event triggers: each shop event of the campaign's trigger runs the deployment for its user."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    return [DeploymentEventTrigger(
        name=f"{spec.name}-on-{t['event']}", expect={EVENT_PREFIX + t["event"]},
        match={"prefect.resource.id": "camp.user.*"},
        parameters={**spec.parameters, "user_id": "{{ event.resource['camp.user'] | string }}",
                    "event_id": "{{ event.id | string }}", "occurred": "{{ event.occurred | string }}"})
        for t in spec.triggers]


def schedule_objects(spec: DeploymentSpec):
    from prefect.schedules import Cron, Interval, RRule

    out = []
    for i, s in enumerate(spec.schedules):
        slug = f"{spec.name}-{i}"
        if "rrule" in s:
            out.append(RRule(s["rrule"], timezone=s["timezone"], slug=slug))
        elif "cron" in s:
            out.append(Cron(s["cron"], timezone=s["timezone"], slug=slug))
        else:
            out.append(Interval(timedelta(seconds=s["interval"]), anchor_date=datetime.fromisoformat(s["anchor"]),
                                timezone=s["timezone"], slug=slug))
    return out


def stored_schedules(deployment) -> list[dict]:
    """A deployment's schedules read back from the API, in the same plain form as the specs."""
    out = []
    for ds in deployment.schedules or []:
        sch = ds.schedule
        if getattr(sch, "rrule", None):
            out.append({"rrule": sch.rrule, "timezone": sch.timezone})
        elif getattr(sch, "cron", None):
            out.append({"cron": sch.cron, "timezone": sch.timezone})
        else:
            out.append({"interval": int(sch.interval.total_seconds()), "timezone": sch.timezone,
                        "anchor": sch.anchor_date.replace(tzinfo=None).isoformat()})
    return out
