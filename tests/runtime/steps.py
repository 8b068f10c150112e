"""Run a campaign step in-process, through the real flow, the way `camp run` does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from compiler.check import check_workspace
from compiler.plan import StepPlan
from compiler.step_plan import build_plan
from compiler.workspace import load_workspace
from runtime.warehouse import workspace_url


def program_of(root: Path):
    ws = load_workspace(root)
    result = check_workspace(ws)
    assert not result.errors, [d.message for d in result.errors]
    return ws, result.program


def plan_for(root: Path, campaign: str, as_of: datetime, step: str | None = None, dialect: str = "duckdb") -> StepPlan:
    ws, program = program_of(root)
    return build_plan(program, program.campaigns[campaign], as_of, dialect, ws.template_dir, step,
                      ws.config.workspace.name)


def run(root: Path, campaign: str, as_of: datetime, *, step: str | None = None, dry_run: bool = False,
        batch_size: int = 100, ledger_url: str | None = None, data_url: str | None = None,
        channels: dict | None = None, outcomes: bool = False) -> dict:
    """outcomes: end with the artifact of the campaign's outcomes, as `camp run` and deployments do."""
    from runtime import flows
    from runtime.step import redemptions_of

    ws, program = program_of(root)
    plan = plan_for(root, campaign, as_of, step)
    data_url = data_url or workspace_url(ws.config.data.url, root)
    ledger_url = ledger_url or workspace_url(ws.config.ledger.url, root)
    if channels is None:
        channels = {n: s.model_dump() for n, s in ws.config.channels.items()}
    with flows.run_settings():
        return flows.run_step(plan.model_dump(mode="json"), data_url, ledger_url, as_of.isoformat(), dry_run,
                              batch_size, channels, redemptions_of(ws, program), str(root) if outcomes else None)


def run_engine(run, batch: int) -> dict:
    """The flow's stages for one Run, in this process and without Prefect (state machines, fuzzing): record
    the run, snapshot, recover, release, decide and send batch by batch, summarize. Returns the summary."""
    from runtime import engine

    try:
        return engine.run_through(run, batch)
    finally:
        run.close()
