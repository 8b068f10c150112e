"""The checked program: segments, classifications, policy and campaigns as typed IR.

This is what `compiler.sql` and `compiler.plan` read; nothing here points back at text
except `file` and the spans kept for messages: each declaration's span and its name's, each
section's and each clause's (branches, variants, resources, caps, schedule), so that lints read this
model alone. Spans added for messages take no part in equality or repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from compiler.ir import Dur, Expr
from compiler.schema import Schema
from dsl.span import Span


@dataclass(frozen=True)
class MoneyAmount:
    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass
class Segment:
    name: str
    title: str | None
    expr: Expr
    file: str
    span: Span


@dataclass
class Classification:
    name: str
    title: str | None
    rules: list[tuple[str, Expr | None]]  # first match wins; None is `otherwise`
    file: str
    span: Span

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.rules]


@dataclass
class CapRule:
    """At most `count` of `unit` per user per window. unit: "message", "coupon" or a channel name.

    `unused` caps count coupons issued and not yet redeemed or expired (no window).
    Tiered caps give a count per label of `by`; `default` applies to users with no listed label.
    """

    unit: str
    count: int
    per: Dur | None = None
    unused: bool = False
    by: str | None = None
    tiers: dict[str, int] = field(default_factory=dict)
    default: int | None = None
    span: Span = field(default_factory=Span.unknown)
    file: str = ""


@dataclass
class Policy:
    caps: list[CapRule] = field(default_factory=list)
    quiet: tuple[str, str] | None = None
    groups: dict[str, tuple[str, Span]] = field(default_factory=dict)
    costs: dict[str, MoneyAmount] = field(default_factory=dict)


@dataclass
class Coupon:
    code: str
    title: str | None
    value: MoneyAmount | None
    min_spend: MoneyAmount | None
    scope: dict[str, tuple] = field(default_factory=dict)  # field -> allowed values
    usable_for: Dur | None = None
    usable_from: date | None = None
    usable_to: date | None = None
    kind: str = "coupon"
    span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass
class Points:
    amount: Decimal
    kind: str = "points"
    span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass
class RedPacket:
    name: str
    title: str | None
    value: MoneyAmount | None
    decay: Decimal | None = None  # fraction taken off each repeated share
    floor: MoneyAmount | None = None
    fixed_after: int | None = None
    kind: str = "red_packet"
    span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass
class Schedule:
    """kind: daily weekly every once cron event. Times are HH:MM in `tz`; dates bound the run inclusively."""

    kind: str
    tz: str
    times: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    interval: Dur | None = None
    at: datetime | None = None
    cron: str | None = None
    event: str | None = None
    first: bool = False
    condition: Expr | None = None
    delay: Dur | None = None
    start: date | None = None
    end: date | None = None
    local: bool = False  # `tz user`: the times are each user's wall clock; `tz` is then FIRST_ZONE
    span: Span = field(default_factory=Span.unknown, compare=False, repr=False)  # the `when` section


@dataclass(frozen=True)
class ChannelRef:
    channel: str
    template: str | None = None
    subject: str | None = None


@dataclass
class Action:
    give: str | None = None  # resource name; "*" for `give what`
    notify: list[ChannelRef] | None = None  # fallback chain


@dataclass
class Step:
    name: str
    after: Dur | None
    unless: Expr | None
    actions: list[Action] = field(default_factory=list)
    branches: list[tuple[Expr | None, list[Action]]] = field(default_factory=list)
    variants: list[tuple[str, Decimal, list[Action]]] = field(default_factory=list)
    span: Span = field(default_factory=Span.unknown)
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)
    branch_spans: list[Span] = field(default_factory=list, compare=False, repr=False)  # one per branch
    variant_spans: list[Span] = field(default_factory=list, compare=False, repr=False)  # one per variant

    def all_actions(self) -> list[Action]:
        out = list(self.actions)
        for _, acts in self.branches:
            out += acts
        for _, _, acts in self.variants:
            out += acts
        return out

    def sends(self) -> bool:
        return any(a.notify for a in self.all_actions())

    def arm_names(self) -> list[str]:
        """The names its arms carry in the plan and the ledger: the variants', else `branch1`… and `otherwise`,
        else `all`."""
        if self.variants:
            return [n for n, _, _ in self.variants]
        if self.branches:
            return [f"branch{i + 1}" if cond is not None else "otherwise" for i, (cond, _) in enumerate(self.branches)]
        return ["all"]


@dataclass
class Campaign:
    name: str
    title: str | None
    file: str
    span: Span
    owner: str | None = None
    objective: str | None = None
    goal: Expr | None = None
    goal_window: Dur | None = None
    targets: list[tuple[str, str, Decimal]] = field(default_factory=list)
    audience: Expr | None = None
    excludes: list[Expr] = field(default_factory=list)
    holdout: Decimal = Decimal(0)
    resources: dict[str, Coupon | Points | RedPacket] = field(default_factory=dict)
    message_only: bool = False
    schedule: Schedule | None = None
    channels: list[ChannelRef] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    budget_total: MoneyAmount | None = None
    budget_daily: MoneyAmount | None = None
    costs: dict[str, MoneyAmount] = field(default_factory=dict)
    redemption: Decimal | None = None
    caps: list[CapRule] = field(default_factory=list)
    quiet: tuple[str, str] | None = None
    priority: int = 0
    exclusive: str | None = None
    exclusive_span: Span = field(default_factory=Span.unknown)
    trigger_span: Span = field(default_factory=Span.unknown)
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)
    who_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)  # the `who` section
    how_much_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)  # the `how much` section


@dataclass
class Alert:
    """An aggregate message to a team (compiler.alert): how many users meet `audience` (minus `excludes`), and their
    share of all users, compared with the threshold once per occurrence of `schedule`."""

    name: str
    title: str | None
    file: str
    span: Span
    owner: str | None = None
    audience: Expr | None = None
    excludes: list[Expr] = field(default_factory=list)
    schedule: Schedule | None = None
    measure: str = "count"  # count | share (of all users)
    op: str = ">="
    value: Decimal = Decimal(0)  # a count, or a share as a fraction
    team: str = ""
    sample: int = 10  # users listed in the message
    name_span: Span = field(default_factory=Span.unknown, compare=False, repr=False)


@dataclass
class Program:
    schema: Schema
    segments: dict[str, Segment] = field(default_factory=dict)
    classifications: dict[str, Classification] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    currency: str = "CNY"
    timezone: str = "UTC"
    point_cost: Decimal = Decimal(0)  # camp.toml [points] cost_per_point: what one point costs the shop
    points_issuer: str = "outbox"  # camp.toml [points] issue_with: the channel that issues points
