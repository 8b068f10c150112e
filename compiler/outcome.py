"""A campaign's goal -> its outcome query: per exposure (a user in one occurrence), did the goal hold in the
goal's window from the exposure's t0, and what did the user order there.

    outcome_sql(program, campaign, as_of, dialect) -> SQL text

The query reads the EXPOSURE table (compiler.sql: exposure_id, user_id, t0) the runtime loads into the
warehouse session and returns, per exposure whose user is in the users table: `exposure_id`, `converted`,
`orders` and `amount` (the count and the summed `amount` of the goal's order events in the window, whatever
the goal says; 0 without such events), `first_order` (the time of the user's first such event before the as-of
time, whatever the window: NULL without one; the report's new customers are those whose first order is at or
after t0), `clicks` (with `clicks`, camp.toml [clicks]: the count of the user's click events naming this campaign in
the window; 0 without), `window_open` (the window has not ended at the as-of time). Aggregates of the goal without a
window of their own count the window [t0, t0 + goal window) (as `since_entry` does for journeys); every window
is cut at the as-of time. A campaign without a goal converts no one; its windows (clicks) run to the as-of time.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from compiler import ir as I
from compiler import types as T
from compiler.config import Clicks
from compiler.program import Campaign, Program
from compiler.sql import AudienceSQL, CompileError


def outcome_sql(program: Program, campaign: Campaign, as_of: datetime, dialect: str = "duckdb",
                clicks: Clicks | None = None, t0_range: tuple[datetime, datetime] | None = None) -> str:
    """The outcome query of `campaign`'s goal and clicks (see the module docstring); `t0_range`: the earliest and
    latest t0 of the EXPOSURE table, which lets windows end without a zone conversion per row where the
    workspace zone's clocks do not change (compiler.sql.AudienceSQL)."""
    if campaign.goal is None and clicks is None:
        raise CompileError(f"campaign {campaign.name} has no goal")
    window = I.Win("from", start=campaign.goal_window)
    goal = I.with_window(campaign.goal, window) if campaign.goal is not None else I.Const(False, T.BOOL)
    event = _orders_event(program, campaign.goal) if campaign.goal is not None else None
    zero = I.Const(Decimal(0), T.NUMBER)
    orders: I.Expr = zero
    amount: I.Expr = zero
    first: I.Expr = I.Const(None, T.TIMESTAMP)
    if event is not None:
        name, money = event
        orders = I.Agg("count", name, None, None, window, T.NUMBER)
        if money is not None:
            amount = I.Agg("sum", name, money, None, window, money.type)
        time = program.schema.events[name].field("time")
        assert time is not None  # every event has its time
        first = I.Agg("first", name, I.EventField(name, "time", time.column, time.type), None, None, T.TIMESTAMP)
    values = [("orders", orders), ("amount", amount), ("first_order", first),
              ("clicks", _clicks(program, campaign, clicks, window) if clicks is not None else zero)]
    compiler = AudienceSQL(program, as_of, dialect, exposure=True, t0_range=t0_range)
    return compiler.sql(compiler.per_exposure(goal, values, campaign.goal_window), pretty=False)


def _clicks(program: Program, campaign: Campaign, clicks: Clicks, window: I.Win) -> I.Expr:
    """The count of the exposure's clicks on this campaign's messages in its window."""
    f = program.schema.events[clicks.event].fields[clicks.campaign_field]
    named = I.Cmp("=", I.EventField(clicks.event, f.name, f.column, f.type), I.Const(campaign.name, T.TEXT), T.TEXT)
    return I.Agg("count", clicks.event, None, named, window, T.NUMBER)


def _orders_event(program: Program, goal: I.Expr) -> tuple[str, I.EventField | None] | None:
    """The event whose count and `amount` the report sums: the first the goal reads that has a money field
    `amount`, else the first it reads, else the schema's `orders`."""
    read = [n.event for n in I.walk(goal) if isinstance(n, I.Agg)]
    names = list(dict.fromkeys(read + (["orders"] if "orders" in program.schema.events else [])))
    fields = [(name, _amount(program, name)) for name in names]
    for name, amount in fields:
        if amount is not None:
            return name, amount
    return fields[0] if fields else None


def _amount(program: Program, event: str) -> I.EventField | None:
    f = program.schema.events[event].field("amount")
    if f is None or f.type.kind != "money":
        return None
    return I.EventField(event, "amount", f.column, f.type)
