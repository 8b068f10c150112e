"""`camp deploy` (show the plan, apply with --yes, prune by tag) and `camp serve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from camp.audience import checked
from camp.run import _quiet_prefect

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment


def _wanted(path: Path, work_pool: str | None = None):
    """The workspace and its deployment specs. On a work pool, the workspace travels as camp.toml's [deploy]
    says (runtime.deploy.code_source); served by this process (`camp serve`), it is this host's path."""
    loaded = checked(path)
    if loaded is None:
        return None
    ws, program, _, _ = loaded
    from runtime.deploy import SourceError, code_source, specs

    try:
        source = code_source(ws.root, ws.config.deploy) if work_pool else None
    except SourceError as exc:
        print(f"camp deploy: {exc}", file=sys.stderr)
        return None
    return ws, specs(ws.root, program, ws.config.workspace.name, ws.template_dir, source)


def _deployed(client, workspace: str) -> list[dict]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    from runtime.deploy import stored_schedules, workspace_tag

    found = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(
        all_=[workspace_tag(workspace)])))
    return [{"id": str(d.id), "name": d.name, "description": d.description, "schedules": stored_schedules(d)}
            for d in found]


def _midway(ws, campaign: str, steps: list[str], all_steps: list[str]) -> int:
    """Users who received the step before a changed or removed step (in the deployed order) and have
    not reached it yet: they will get the new version of it, or none when it is removed."""
    from runtime.ledger import open_ledger
    from runtime.warehouse import run_urls

    targets = [s for s in steps if s in all_steps and all_steps.index(s) > 0]
    if not targets:
        return 0
    lg = open_ledger(run_urls(ws)[1])
    try:
        n = 0
        for step in targets:
            before = all_steps[all_steps.index(step) - 1]
            n += lg.midway(campaign, before, step)
        return n
    finally:
        lg.close()


def run_deploy(path: Path, work_pool: str | None, yes: bool) -> int:
    wanted = _wanted(path, work_pool)
    if wanted is None:
        return 1
    ws, specs = wanted
    _quiet_prefect()
    from prefect.client.orchestration import get_client

    from runtime.deploy import diff

    with get_client(sync_client=True) as client:
        changes = diff(specs, _deployed(client, ws.config.workspace.name))
    marks = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}
    print(f"camp deploy: workspace {ws.config.workspace.name} ({ws.root})"
          + (f", work pool {work_pool}" if work_pool else ", served by `camp serve`"))
    if work_pool and specs:
        print(f"camp deploy: workers take the workspace {_where(specs[0].source, specs[0].parameters['workspace'])}")
    for ch in changes:
        line = f"  {marks[ch.action]} {ch.action:<9} {ch.name}"
        if ch.spec is not None and ch.action != "unchanged":
            kinds = ", ".join(f"{'rrule' if 'rrule' in s else 'cron' if 'cron' in s else 'interval'} "
                              f"{(s.get('rrule') or s.get('cron') or s.get('interval'))!s}".replace("\n", " ")
                              + f" ({s['timezone']})" for s in ch.spec.schedules)
            events = ", ".join(f"on {t['event']}" for t in ch.spec.triggers)
            line += f"  schedules: {kinds or 'none'}" + (f"  triggers: {events}" if events else "") + \
                (f"  [{ch.spec.note}]" if ch.spec.note else "")
        print(line)
        if ch.action in ("update", "delete") and ch.changed_steps:
            n = _midway(ws, ch.name, ch.changed_steps, ch.old_order)
            print(f"      steps changed or removed: {', '.join(ch.changed_steps)}; users mid-way on them: {n}")
    todo = [c for c in changes if c.action != "unchanged"]
    if not todo:
        print("camp deploy: nothing to change")
        return 0
    if not yes:
        print(f"camp deploy: {len(todo)} changes; run again with --yes to apply them")
        return 0
    apply(todo, work_pool)
    print(f"camp deploy: applied {len(todo)} changes")
    return 0


def apply(changes, work_pool: str | None) -> None:
    from prefect.client.orchestration import get_client

    for ch in changes:
        if ch.action == "delete":
            with get_client(sync_client=True) as client:
                client.delete_deployment(ch.deployment_id)
            continue
        _deployment(ch.spec).apply(work_pool_name=work_pool)


def _where(source: dict, workspace: str) -> str:
    if "git" in source:
        return f"from git {source['git']} at {source['commit'][:12]}, folder {workspace}"
    if "path" in source:
        return f"from the shared folder {source['path']}, folder {workspace}"
    return f"at {workspace} on this host only (camp.toml [deploy] source = \"git\" or path for other hosts)"


def _deployment(spec) -> RunnerDeployment:
    """The runner deployment of a spec: the generic flow, imported by module path wherever it runs."""
    from prefect.types.entrypoint import EntrypointType

    from runtime.deploy import schedule_objects, trigger_objects
    from runtime.flows import alert_flow, materialize_labels, run_campaign

    flow = {"alert": alert_flow, "materialize": materialize_labels}.get(spec.flow, run_campaign)
    dep = flow.to_deployment(
        name=spec.name, schedules=schedule_objects(spec), triggers=trigger_objects(spec), parameters=spec.parameters,
        tags=spec.tags, description=spec.description, entrypoint_type=EntrypointType.MODULE_PATH)
    if spec.source:  # the pull steps of runtime.deploy.pull_steps, as Prefect's own storage objects write them
        from prefect.runner.storage import GitRepository, LocalStorage

        dep.storage = (GitRepository(spec.source["git"], commit_sha=spec.source["commit"]) if "git" in spec.source
                       else LocalStorage(spec.source["path"]))
    return dep


def run_serve(path: Path) -> int:
    wanted = _wanted(path)
    if wanted is None:
        return 1
    ws, specs = wanted
    _quiet_prefect()
    from prefect import serve

    from runtime.flows import run_settings
    from runtime.ledger.backend import backend_for
    from runtime.warehouse import dialect_of, run_urls

    deployments = [_deployment(s) for s in specs]
    # DuckDB lets one process write a file at a time: with a DuckDB ledger, runs go one after another
    limit = 1 if backend_for(dialect_of(run_urls(ws)[1])).one_writer else None
    kinds = {"campaign": "campaigns", "alert": "alerts", "materialize": "materialisations"}
    counts = [f"{n} {word}" for kind, word in kinds.items() if (n := sum(s.flow == kind for s in specs))]
    print(f"camp serve: {' and '.join(counts) or 'nothing'} of {ws.config.workspace.name}"
          + (", one run at a time (DuckDB ledger)" if limit else "") + "; Ctrl-C to stop", file=sys.stderr)
    with run_settings():
        serve(*deployments, print_starting_message=False, limit=limit)
    return 0


def run_emit(event: str, user: str, occurred: str | None, fields: tuple[str, ...], event_id: str | None = None) -> int:
    """Emit a shop event to Prefect, the way a shop's backend would (see docs/runtime.md)."""
    from datetime import UTC, datetime

    _quiet_prefect()
    from prefect.events import emit_event

    from runtime.deploy import EVENT_PREFIX

    payload = {}
    for f in fields:
        key, sep, value = f.partition("=")
        if not sep:
            print(f"camp emit: --field takes NAME=VALUE, not {f!r}", file=sys.stderr)
            return 2
        payload[key] = value
    try:
        when = datetime.fromisoformat(occurred) if occurred else datetime.now(UTC)
    except ValueError:
        print(f"camp emit: --occurred {occurred!r} is not an ISO 8601 time like 2026-12-01T10:00+08:00",
              file=sys.stderr)
        return 2
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    from uuid import UUID

    try:
        uid = UUID(event_id) if event_id else None
    except ValueError:
        print(f"camp emit: --id {event_id!r} is not a UUID", file=sys.stderr)
        return 2
    sent = emit_event(EVENT_PREFIX + event, resource={"prefect.resource.id": f"camp.user.{user}", "camp.user": user},
                      occurred=when, payload=payload, id=uid)
    if sent is None:
        print("camp emit: Prefect did not take the event (is PREFECT_API_URL set to a server?)", file=sys.stderr)
        return 1
    print(f"camp emit: {EVENT_PREFIX}{event} for user {user} at {when.isoformat()} (event {sent.id})")
    return 0
