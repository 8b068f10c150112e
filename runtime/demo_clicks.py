"""After runs, the demo shop's clicks on camp's messages (`camp demo respond --click P`), so that `camp report`
has a click rate to find.

    plant_clicks(wh, exposures, where, windows, days, seed, click) -> int   (click rows written)

Each user a campaign's occurrence sent something to (the ledger's `respond_exposures_frame`, `sent` = 1) clicks
its message with probability `click`, once, at a time drawn uniformly inside the campaign's goal window from the
user's first send (`windows`; the `days` written when shorter or without a goal), a minute clear of both ends. A
click is a row of the schema's click events (camp.toml `[clicks]`: `where`): the user, the time, the campaign's
name in the campaign field, and `demo/SEED/CAMPAIGN/OCCURRENCE/USER` in a `click_id` field when the events have
one. Every draw is a hash of (seed, campaign, occurrence, user): the same seed gives the same clicks.

The clicks written are listed in `camp_demo_clicks` of the warehouse (user, time, campaign); a second call first
removes what the first wrote, so responding again replaces, never adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from runtime.demo_response import _uniform
from runtime.warehouse import Warehouse

MARK = "camp_demo_clicks"  # (user_id, clicked_at, campaign) of the clicks a response wrote
_CLEAR = timedelta(minutes=1)


@dataclass(frozen=True)
class ClickTable:
    """The click events' table and columns (the schema's event named by camp.toml [clicks])."""

    table: str
    user_column: str
    time_column: str
    campaign_column: str
    id_column: str | None  # a text field `click_id`, when the events have one


def plant_clicks(wh: Warehouse, exposures: pd.DataFrame, where: ClickTable, windows: dict[str, timedelta],
                 days: int, seed: int, click: float) -> int:
    """`exposures`: (campaign, occurrence, user_id, sent, t0, arm); returns the click rows written."""
    _forget(wh, where)
    g: Any = exposures[exposures["sent"] == 1].copy() if len(exposures) else exposures
    if g.empty:
        return 0
    g["key"] = g["campaign"] + "/" + g["occurrence"].astype(str) + "/" + g["user_id"].astype(str)
    g = g[_uniform(g["key"], seed, "click") < click]
    if g.empty:
        return 0
    span = timedelta(days=days)
    room = np.array([(min(windows.get(c, span), span) - 2 * _CLEAR).total_seconds() for c in g["campaign"]])
    offset = (_uniform(g["key"], seed, "click-when") * room.clip(0)).astype(np.int64)
    at = pd.to_datetime(g["t0"], utc=True) + pd.to_timedelta(offset, unit="s") + _CLEAR
    cols = {where.user_column: g["user_id"].astype(np.int64).to_numpy(), where.time_column: at.to_numpy(),
            where.campaign_column: g["campaign"].to_numpy()}
    if where.id_column:
        cols[where.id_column] = (f"demo/{seed}/" + g["key"]).to_numpy()
    frame = pd.DataFrame(cols)
    wh.bulk_insert(where.table, list(frame.columns), frame)
    mark = frame[[where.user_column, where.time_column, where.campaign_column]]
    wh.bulk_insert(MARK, ["user_id", "clicked_at", "campaign"], mark.set_axis(["user_id", "clicked_at", "campaign"],
                                                                               axis=1))
    return len(frame)


def _forget(wh: Warehouse, where: ClickTable) -> None:
    """Remove the clicks an earlier response wrote, so responding again replaces them."""
    def q(name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=wh.dialect)

    table = exp.to_table(where.table).sql(dialect=wh.dialect)
    wh.execute(f"CREATE TABLE IF NOT EXISTS {MARK} (user_id bigint, clicked_at timestamptz, campaign text)")
    wh.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {MARK} m WHERE m.user_id = {table}."
               f"{q(where.user_column)} AND m.clicked_at = {table}.{q(where.time_column)} AND m.campaign = "
               f"{table}.{q(where.campaign_column)})")
    wh.execute(f"DELETE FROM {MARK}")
