"""The abstract syntax tree: what the text says, with a span on every node.

The AST mirrors the source; it resolves no names and knows no types (that is
`compiler.check`'s job). Nodes are frozen pydantic models with a `kind`
discriminator so that `camp parse --json` output can be read back. Spans are
excluded from equality-by-content via `same_tree`, which the formatter's
round-trip property uses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from dsl.span import Span


class Node(BaseModel):
    # defer_build: the parser builds nodes without validation, so `camp check` never pays for
    # pydantic's schemas; they are built on first validation or JSON dump.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    span: Span = Field(default_factory=Span.unknown, repr=False)


# ------------------------------------------------------------------ small parts


class Duration(Node):
    """`7d`, `30m`, `3mo`: an amount of a unit (m, h, d, w, mo)."""

    kind: Literal["duration"] = "duration"
    value: int
    unit: Literal["m", "h", "d", "w", "mo"]

    def text(self) -> str:
        return f"{self.value}{self.unit}"


class Money(Node):
    kind: Literal["money"] = "money"
    amount: Decimal
    currency: str


class Ident(Node):
    """A bare name written in the source, with its own span (for diagnostics)."""

    kind: Literal["ident"] = "ident"
    name: str


# ------------------------------------------------------------------ expressions


class Name(Node):
    """A dotted reference: `city`, `orders.amount`, `silent` (a label)."""

    kind: Literal["name"] = "name"
    parts: list[str]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


class StringLit(Node):
    kind: Literal["string"] = "string"
    value: str


class NumberLit(Node):
    kind: Literal["number"] = "number"
    value: Decimal


class MoneyLit(Node):
    kind: Literal["money_lit"] = "money_lit"
    amount: Decimal
    currency: str


class PercentLit(Node):
    """`50%`; `value` is the written number (50), not the fraction."""

    kind: Literal["percent"] = "percent"
    value: Decimal


class DateLit(Node):
    """A date as written; validity (no 2026-02-30) is checked by the compiler."""

    kind: Literal["date"] = "date"
    text: str


class DateTimeLit(Node):
    kind: Literal["datetime"] = "datetime"
    text: str


class BoolLit(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: Expr


class Arith(Node):
    kind: Literal["arith"] = "arith"
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


class Compare(Node):
    kind: Literal["compare"] = "compare"
    op: Literal["=", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


class InList(Node):
    kind: Literal["in"] = "in"
    subject: Expr
    items: list[Expr]
    negated: bool = False


class Between(Node):
    kind: Literal["between"] = "between"
    subject: Expr
    low: Expr
    high: Expr


class IsNull(Node):
    kind: Literal["is_null"] = "is_null"
    subject: Expr
    negated: bool = False


class TextMatch(Node):
    kind: Literal["text_match"] = "text_match"
    op: Literal["contains", "starts_with"]
    subject: Expr
    pattern: Expr


class IsToday(Node):
    """`birthday is today` / `registered anniversary is today` (user's time zone)."""

    kind: Literal["is_today"] = "is_today"
    subject: Expr
    anniversary: bool = False


class Window(Node):
    """A time window relative to the run's as-of time (or a step's send time).

    within D        [asof - D, asof)
    after D ago     [asof - D, +inf)
    before D ago    (-inf, asof - D)
    between A and B ago   [asof - A, asof - B)
    since STEP      [sent_at(STEP), asof)
    """

    kind: Literal["window"] = "window"
    op: Literal["within", "after", "before", "between", "since"]
    duration: Duration | None = None
    until: Duration | None = None
    step: Ident | None = None


class RelTime(Node):
    """`registered within 30d`, `last(orders.time) before 30d ago`."""

    kind: Literal["rel_time"] = "rel_time"
    subject: Expr
    window: Window


class Tagged(Node):
    kind: Literal["tagged"] = "tagged"
    tag: str
    held: Duration | None = None  # `tagged "vip" for 30d`: held at least that long (manual tags keep when)


class SegmentRef(Node):
    kind: Literal["segment_ref"] = "segment_ref"
    name: Ident


class Redeemed(Node):
    """`redeemed(HIGHEND20)`: the user redeemed a coupon of that code the campaign issued."""

    kind: Literal["redeemed"] = "redeemed"
    code: Ident


class LabelWas(Node):
    """`value_quadrant was hf_lv 90d ago`: the materialised label of the classification at that time."""

    kind: Literal["label_was"] = "label_was"
    classification: Ident
    label: Ident
    ago: Duration


class LabelMoved(Node):
    """`moved value_quadrant from hf_lv to lf_lv within 30d`: was FROM at some time in the window, is TO now."""

    kind: Literal["label_moved"] = "label_moved"
    classification: Ident
    source: Ident
    target: Ident
    within: Duration


class Aggregate(Node):
    """`count(orders where ... within 7d)`, `sum(orders.amount within 365d)` ..."""

    kind: Literal["aggregate"] = "aggregate"
    func: Literal["count", "count_distinct", "sum", "avg", "min", "max", "first", "last", "any", "none"]
    event: Ident
    field: Ident | None = None
    where: Expr | None = None
    window: Window | None = None


class PopulationStat(Node):
    """A statistic over the user base at the as-of time (docs/language.md, "Ranks and percentiles"):
    `percent_rank(EXPR)`, `ntile(N, EXPR)`, `percentile(P, EXPR)`, each optionally `among COND` inside the
    parentheses. `arg` is N or P as written (the checker wants a whole number, a percentage)."""

    kind: Literal["population_stat"] = "population_stat"
    func: Literal["percent_rank", "ntile", "percentile"]
    arg: Expr | None = None
    value: Expr
    among: Expr | None = None


class And(Node):
    kind: Literal["and"] = "and"
    items: list[Expr]


class Or(Node):
    kind: Literal["or"] = "or"
    items: list[Expr]


class Not(Node):
    kind: Literal["not"] = "not"
    operand: Expr


Expr = Annotated[
    Union[
        Name, StringLit, NumberLit, MoneyLit, PercentLit, DateLit, DateTimeLit, BoolLit,
        Neg, Arith, Compare, InList, Between, IsNull, TextMatch, IsToday, RelTime,
        Tagged, SegmentRef, Redeemed, Aggregate, And, Or, Not, LabelWas, LabelMoved,
        PopulationStat,
    ],
    Field(discriminator="kind"),
]

LITERAL_KINDS = frozenset({"string", "number", "money_lit", "percent", "date", "datetime", "bool"})

# ------------------------------------------------------------------ schema


class TypeSpec(Node):
    kind: Literal["type"] = "type"
    name: Literal["text", "number", "bool", "date", "timestamp", "money", "enum"]
    currency: str | None = None
    values: list[str] = []


class FieldDecl(Node):
    kind: Literal["field"] = "field"
    name: Ident
    type: TypeSpec
    column: Ident | None = None
    pii: bool = False
    tz: bool = False


class UsersDecl(Node):
    kind: Literal["users"] = "users"
    table: str
    key: Ident
    fields: list[FieldDecl]


class EventsDecl(Node):
    kind: Literal["events"] = "events"
    name: Ident
    table: str
    user: Ident
    time: Ident
    fields: list[FieldDecl]


class TagsDecl(Node):
    kind: Literal["tags"] = "tags"
    table: str
    user: Ident
    tag: Ident


class ConsentDecl(Node):
    kind: Literal["consent"] = "consent"
    table: str
    user: Ident
    channel: Ident


class SegmentDecl(Node):
    kind: Literal["segment"] = "segment"
    name: Ident
    title: str | None = None
    expr: Expr


class ClassRule(Node):
    kind: Literal["class_rule"] = "class_rule"
    label: Ident
    title: str | None = None
    expr: Expr | None = None  # None: `otherwise`


class ClassifyDecl(Node):
    kind: Literal["classify"] = "classify"
    name: Ident
    title: str | None = None
    rules: list[ClassRule]


class MaterializeDecl(Node):
    """`materialize lifecycle, value_quadrant daily at 02:00`: snapshot these segments and classifications
    into the label history every day at that time of the workspace's zone."""

    kind: Literal["materialize"] = "materialize"
    names: list[Ident]
    at: str


# ------------------------------------------------------------------ limits (policy + how much)


class Cap(Node):
    """`cap 2 sms per user per 7d`, `cap 3 unused coupons per user`."""

    kind: Literal["cap"] = "cap"
    count: int
    unused: bool = False
    unit: Ident  # message(s), coupon(s), or a channel name
    per: Duration | None = None


class Tier(Node):
    kind: Literal["tier"] = "tier"
    label: Ident | None = None  # None: otherwise
    count: int


class TieredCap(Node):
    """`cap email per user per 1d by engagement { active 2  otherwise 1 }`."""

    kind: Literal["tiered_cap"] = "tiered_cap"
    channel: Ident
    per: Duration
    by: Ident
    tiers: list[Tier]


class Quiet(Node):
    kind: Literal["quiet"] = "quiet"
    start: str
    end: str


class ChannelCost(Node):
    kind: Literal["channel_cost"] = "channel_cost"
    channel: Ident
    cost: Money


class Costs(Node):
    kind: Literal["costs"] = "costs"
    items: list[ChannelCost]


class ExclusiveGroup(Node):
    kind: Literal["exclusive_group"] = "exclusive_group"
    group: str


PolicyItem = Annotated[Union[Cap, TieredCap, Quiet, Costs, ExclusiveGroup], Field(discriminator="kind")]


class PolicyDecl(Node):
    kind: Literal["policy"] = "policy"
    name: Ident | None = None
    items: list[PolicyItem]


# ------------------------------------------------------------------ campaign sections


class Owner(Node):
    kind: Literal["owner"] = "owner"
    owner: str


class Goal(Node):
    kind: Literal["goal"] = "goal"
    expr: Expr
    window: Duration | None = None


class Target(Node):
    kind: Literal["target"] = "target"
    metric: Ident
    op: Literal["<", "<=", ">", ">=", "!="]
    value: Expr


class Why(Node):
    kind: Literal["why"] = "why"
    objective: Ident
    items: list[Annotated[Union[Goal, Target], Field(discriminator="kind")]]


class Exclude(Node):
    kind: Literal["exclude"] = "exclude"
    expr: Expr


class Holdout(Node):
    kind: Literal["holdout"] = "holdout"
    percent: Decimal


class Who(Node):
    kind: Literal["who"] = "who"
    expr: Expr
    items: list[Annotated[Union[Exclude, Holdout], Field(discriminator="kind")]]


class Scope(Node):
    kind: Literal["scope"] = "scope"
    field: Ident
    values: list[Expr]


class CouponValue(Node):
    kind: Literal["coupon_value"] = "coupon_value"
    value: Money


class MinSpend(Node):
    kind: Literal["min_spend"] = "min_spend"
    value: Money


class UsableFor(Node):
    kind: Literal["usable_for"] = "usable_for"
    duration: Duration


class UsableBetween(Node):
    kind: Literal["usable_between"] = "usable_between"
    start: DateLit
    end: DateLit


CouponItem = Annotated[Union[CouponValue, MinSpend, Scope, UsableFor, UsableBetween], Field(discriminator="kind")]


class Coupon(Node):
    kind: Literal["coupon"] = "coupon"
    code: Ident
    title: str | None = None
    items: list[CouponItem]


class Points(Node):
    kind: Literal["points"] = "points"
    amount: Decimal


class MessageOnly(Node):
    kind: Literal["message"] = "message"


class PacketValue(Node):
    kind: Literal["packet_value"] = "packet_value"
    value: Money


class ShareDecay(Node):
    """`share decay 50% floor 2 CNY after 3`."""

    kind: Literal["share_decay"] = "share_decay"
    decay: Decimal
    floor: Money
    after: int


class RedPacket(Node):
    kind: Literal["red_packet"] = "red_packet"
    name: Ident
    title: str | None = None
    items: list[Annotated[Union[PacketValue, ShareDecay], Field(discriminator="kind")]]


Resource = Annotated[Union[Coupon, Points, MessageOnly, RedPacket], Field(discriminator="kind")]


class What(Node):
    kind: Literal["what"] = "what"
    resources: list[Resource]


class Daily(Node):
    kind: Literal["daily"] = "daily"
    times: list[str]


class Weekly(Node):
    kind: Literal["weekly"] = "weekly"
    days: list[Ident]
    times: list[str]


class Every(Node):
    kind: Literal["every"] = "every"
    interval: Duration


class Once(Node):
    kind: Literal["once"] = "once"
    at: str


class Cron(Node):
    kind: Literal["cron"] = "cron"
    expr: str


class OnEvent(Node):
    kind: Literal["on_event"] = "on_event"
    event: Ident
    first: bool = False
    condition: Expr | None = None
    delay: Duration | None = None


Trigger = Annotated[Union[Daily, Weekly, Every, Once, Cron, OnEvent], Field(discriminator="kind")]


class DateFrom(Node):
    kind: Literal["date_from"] = "date_from"
    start: DateLit
    end: DateLit | None = None


class DateUntil(Node):
    kind: Literal["date_until"] = "date_until"
    end: DateLit


class TimeZone(Node):
    """`tz "Asia/Shanghai"`, or `tz user`: at the schedule's wall-clock time in each user's own zone."""

    kind: Literal["tz"] = "tz"
    name: str
    user: bool = False


WhenOption = Annotated[Union[DateFrom, DateUntil, TimeZone], Field(discriminator="kind")]


class When(Node):
    kind: Literal["when"] = "when"
    trigger: Trigger
    options: list[WhenOption]


class Channel(Node):
    kind: Literal["channel"] = "channel"
    channel: Ident
    template: StringLit | None = None
    subject: StringLit | None = None


class WhereSection(Node):
    kind: Literal["where"] = "where"
    channels: list[Channel]


class Give(Node):
    kind: Literal["give"] = "give"
    resource: Ident | None = None  # None: `give what`


class Notify(Node):
    kind: Literal["notify"] = "notify"
    channels: list[Channel] | None = None  # None: `notify where`


Action = Annotated[Union[Give, Notify], Field(discriminator="kind")]


class Actions(Node):
    kind: Literal["actions"] = "actions"
    actions: list[Action]


class Branch(Node):
    kind: Literal["branch"] = "branch"
    condition: Expr | None  # None: otherwise
    actions: Actions


class Branches(Node):
    kind: Literal["branches"] = "branches"
    branches: list[Branch]


class Variant(Node):
    kind: Literal["variant"] = "variant"
    name: Ident
    percent: Decimal
    actions: Actions


class Variants(Node):
    kind: Literal["variants"] = "variants"
    variants: list[Variant]


StepBody = Annotated[Union[Actions, Branches, Variants], Field(discriminator="kind")]


class Step(Node):
    kind: Literal["step"] = "step"
    name: Ident
    after: Duration | None = None
    unless: Expr | None = None
    body: StepBody


class How(Node):
    kind: Literal["how"] = "how"
    steps: list[Step]


class Budget(Node):
    kind: Literal["budget"] = "budget"
    total: Money | None = None
    daily: Money | None = None


class Expect(Node):
    kind: Literal["expect"] = "expect"
    redemption: Decimal


class Priority(Node):
    kind: Literal["priority"] = "priority"
    value: int


class Exclusive(Node):
    kind: Literal["exclusive"] = "exclusive"
    group: str


SpendItem = Annotated[Union[Budget, Costs, Expect, Cap, Quiet, Priority, Exclusive], Field(discriminator="kind")]


class HowMuch(Node):
    kind: Literal["how_much"] = "how_much"
    items: list[SpendItem]


Section = Annotated[Union[Owner, Why, Who, What, When, WhereSection, How, HowMuch], Field(discriminator="kind")]


class CampaignDecl(Node):
    kind: Literal["campaign"] = "campaign"
    name: Ident
    title: str | None = None
    sections: list[Section]


class AlertThreshold(Node):
    kind: Literal["threshold"] = "threshold"
    measure: Ident  # count | share
    op: str
    value: Expr


class AlertTo(Node):
    kind: Literal["to"] = "to"
    team: Ident


class AlertSample(Node):
    kind: Literal["sample"] = "sample"
    size: int


AlertItem = Annotated[Union[Owner, Who, When, AlertThreshold, AlertTo, AlertSample], Field(discriminator="kind")]


class AlertDecl(Node):
    kind: Literal["alert"] = "alert"
    name: Ident
    title: str | None = None
    items: list[AlertItem]


Decl = Annotated[
    Union[UsersDecl, EventsDecl, TagsDecl, ConsentDecl, SegmentDecl, ClassifyDecl, PolicyDecl, CampaignDecl,
          AlertDecl, MaterializeDecl],
    Field(discriminator="kind"),
]


class Comment(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)
    line: int
    column: int
    text: str
    own_line: bool  # nothing but white space before it on its line
    blank_after: bool = False  # an empty line follows it (kept by the formatter)


class Module(Node):
    """One .camp file."""

    kind: Literal["module"] = "module"
    path: str = ""
    decls: list[Decl]
    comments: list[Comment] = []


def without_spans(node: BaseModel) -> object:
    """The node as plain data with every span (and comment) removed: equality of content."""
    return _strip(node.model_dump(exclude={"comments", "path"} if isinstance(node, Module) else None))


def _strip(data: object) -> object:
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k != "span"}
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data


def same_tree(a: BaseModel, b: BaseModel) -> bool:
    return without_spans(a) == without_spans(b)
