"""A workspace -> a runnable step: the one way `camp run` and the deployed `camp-campaign` flow turn a checked
workspace, a campaign and an as-of time into what `flows.run_step` runs, so the two cannot drift apart.

    runnable(ws, program, campaign, as_of, step=..., occurrence=..., event=..., data=..., ledger=...) -> Runnable
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from compiler.plan import StepPlan
from compiler.step_plan import build_plan
from compiler.trigger import EventRun
from runtime.warehouse import dialect_of, run_urls


@dataclass(frozen=True)
class Runnable:
    plan: StepPlan
    data_url: str  # the warehouse: --data, else $CAMP_DATA_URL, else camp.toml
    ledger_url: str  # the ledger: --ledger, else $CAMP_LEDGER_URL, else camp.toml
    channels: dict  # camp.toml's channel settings, as the flow takes them
    redemptions: dict | None = None  # where the shop's orders redeem coupons ([coupons]), synced before deciding


def runnable(ws, program, campaign, as_of: datetime, *, step: str | None = None, occurrence: str | None = None,
             event: EventRun | None = None, data: str | None = None, ledger: str | None = None) -> Runnable:
    """The plan of one occurrence of one step of `campaign` (compiler.step_plan.build_plan: raises PlanError) with the
    warehouse, ledger and channels of the workspace it runs against."""
    data_url, ledger_url = run_urls(ws, data, ledger)
    plan = build_plan(program, campaign, as_of, dialect_of(data_url), ws.template_dir, step, ws.config.workspace.name,
                      event, occurrence)
    return Runnable(plan, data_url, ledger_url, channels_of(ws), redemptions_of(ws, program))


def redemptions_of(ws, program) -> dict | None:
    """camp.toml's [coupons] redemption source as plain data (None: nothing to sync), as the flow takes it."""
    source = ws.config.coupons.redemptions(program.schema)
    return source.model_dump() if source is not None else None


def channels_of(ws) -> dict:
    """camp.toml's channel settings as plain data (what a flow run takes as a parameter)."""
    return {name: spec.model_dump() for name, spec in ws.config.channels.items()}
