"""The plan contract: CampaignPlan (what a campaign is, independent of any time) and StepPlan (one
occurrence of one step, what the runtime executes), both versioned pydantic models hashed as sha256 of their
canonical JSON.

A CampaignPlan holds everything about a campaign that no occurrence changes: its audience in a canonical,
position-free form, the schedule, and per step the arms with template sources, the journey and the next
step; resources, caps, budgets, quiet hours and arbitration. `camp deploy` fingerprints it.

A StepPlan holds everything one occurrence of one step needs and nothing the runtime should decide for
itself: the recipients SQL at the occurrence's as-of time (for the ledger's dialect-independent warehouse),
the arms (all / branches / variants) with their resources and channel fallback chains, template sources,
costs, budget, caps (campaign and policy), quiet hours and arbitration. The runtime records `plan_hash` with
every delivery, so a ledger row always says which rules produced it. Same inputs, same plan, same hash.

Built by compiler.campaign_plan (campaign -> CampaignPlan) and compiler.step_plan (-> StepPlan).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from compiler.ir import Dur

PLAN_VERSION = 5  # 2: journeys (follow-up steps over a cohort, the next step to schedule); 3: reach_sql; 4: local_send;
# 5: red packet share rule (decay, floor, fixed_after), points cost and issuer
EXCLUSIVE_HOLD = Dur(7, "d")  # a user stays with one campaign of an exclusive group this long after a send


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
    forecast_cost: Decimal = Decimal(0)  # coupons, red packets: value x expected redemption; points: amount x cost
    decay: Decimal | None = None  # red packets: the fraction each repeated share pays less (0.5)
    floor: Decimal | None = None  # red packets: never less per share; exactly this from share `fixed_after` on
    fixed_after: int | None = None
    unit_cost: Decimal | None = None  # points: what one point costs (camp.toml [points] cost_per_point)
    issuer: str | None = None  # points: the channel that issues them (camp.toml [points] issue_with)


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
    # coupon codes whose redemptions recipients_sql reads (camp_redeemed, filled from the ledger); left out of the
    # JSON when empty, so a plan without `redeemed(CODE)` keeps its JSON and hash
    redeemed: list[str] = Field(default_factory=list, exclude_if=lambda codes: not codes)
    # tags whose manual holders recipients_sql reads (camp_manual_tags, filled from the ledger); left out when empty
    tags: list[str] = Field(default_factory=list, exclude_if=lambda tags: not tags)
    # materialised classifications whose history recipients_sql reads (camp_label_history, filled from the ledger),
    # each with the earliest instant it reads; left out of the JSON when empty (plans without history keep their hash)
    history: dict[str, datetime] = Field(default_factory=dict, exclude_if=lambda names: not names)

    def canonical(self) -> str:
        return _canonical_json(self)

    @property
    def hash(self) -> str:
        return _digest(self)


def _canonical_json(model: BaseModel) -> str:
    """A model as JSON with sorted keys and no whitespace: the text its hash is taken of."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _digest(model: BaseModel) -> str:
    return hashlib.sha256(_canonical_json(model).encode()).hexdigest()


class PlannedStep(BaseModel):
    """One step as the campaign defines it, for any occurrence. `unless` and `conditions` (one per branch,
    None for `otherwise`) are canonical IR (compiler.campaign_plan); `reads`: the user fields its templates
    and subjects read; `problem`: why the step cannot be planned (then it has no arms)."""

    name: str
    after: Duration | None = None
    unless: Any = None
    conditions: list[Any] = []
    arms: list[ArmPlan] = []
    reads: list[str] = []
    journey: JourneyPlan | None = None
    next: NextStep | None = None
    problem: str | None = None


class CampaignPlan(BaseModel):
    """A campaign independent of time: the same on any day and at any as-of. `audience` is the canonical IR
    of who it reaches (audience, excludes, goal, trigger condition) with the segments, classifications and
    schema parts they read; positions and comments are not part of it."""

    version: int = PLAN_VERSION
    workspace: str
    campaign: str
    title: str | None = None
    owner: str | None = None
    timezone: str
    currency: str
    dialect: str
    audience: dict[str, Any]
    holdout: Decimal
    resources: dict[str, ResourcePlan]
    budget_total: Decimal | None = None
    budget_daily: Decimal | None = None
    caps: list[CapPlan]  # the campaign's, then the policy's; a step plan keeps those its step can meet
    quiet: list[tuple[str, str]]
    priority: int
    exclusive: str | None = None
    schedule: SchedulePlan | None = None
    steps: list[PlannedStep]

    @property
    def hash(self) -> str:
        return _digest(self)

    def step_hash(self, name: str) -> str:
        """The hash of one step's part of the plan: the campaign without its other steps."""
        return _digest(self.model_copy(update={"steps": [s for s in self.steps if s.name == name]}))
