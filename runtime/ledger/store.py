"""The ledger's named queries: every statement camp's commands, journeys, arbitration and deploy make
against the ledger, as methods returning typed rows (`runtime.ledger.rows`) or plain values.

Statuses come from the enums (`runtime.ledger.status`) and are written into the SQL text as literals, the
way the statements always read: fixed words of camp's own, never user text.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runtime.ledger.connection import Connection
from runtime.ledger.rows import DeliveryRow, RunRow, SentAt
from runtime.ledger.status import RUN_OVER, RunStatus, Status

if TYPE_CHECKING:
    import pandas as pd


class Ledger(Connection):
    # ------------------------------------------------------------ runs
    def recent_runs(self, limit: int) -> list[RunRow]:
        """The latest runs, newest first (`camp runs`)."""
        return [RunRow(*r) for r in self.rows(
            "SELECT run_id, campaign, step, occurrence, status, started_at, finished_at, plan_hash, summary "
            "FROM camp_runs ORDER BY started_at DESC LIMIT ?", (limit,))]

    def finished_runs(self, campaign: str, step: str, occurrence: str) -> int:
        """How many runs of the occurrence ran to the end."""
        return self.one(f"SELECT count(*) FROM camp_runs WHERE campaign = ? AND step = ? AND occurrence = ? AND "
                        f"status = '{RunStatus.FINISHED}'", (campaign, step, occurrence))

    def run_over(self, campaign: str, step: str, occurrence: str) -> bool:
        """Whether a run (not a dry run) of the occurrence is over: finished, failed or interrupted."""
        marks = ", ".join(["?"] * len(RUN_OVER))
        return bool(self.one(f"SELECT count(*) FROM camp_runs WHERE campaign = ? AND step = ? AND occurrence = ? "
                             f"AND dry_run = ? AND status IN ({marks})", (campaign, step, occurrence, False,
                                                                          *RUN_OVER)))

    def set_run_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        self.execute("UPDATE camp_runs SET summary = ? WHERE run_id = ?", (json.dumps(summary, default=str), run_id))

    # ------------------------------------------------------------ deliveries
    def deliveries(self, campaign: str | None, status: str | None, user: str | None, limit: int) -> list[DeliveryRow]:
        """Deliveries, latest decided first, filtered by whichever of campaign, status and user are given
        (`camp ledger`)."""
        where, params = [], []
        for col, value in (("campaign", campaign), ("status", status), ("user_id", user)):
            if value:
                where.append(f"{col} = ?")
                params.append(value)
        sql = (f"SELECT {', '.join(DeliveryRow._fields)} FROM camp_deliveries"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY decided_at DESC, user_id LIMIT ?")
        return [DeliveryRow(*r) for r in self.rows(sql, (*params, limit))]

    def deferred_due(self, campaign: str, at: datetime) -> int:
        """Deliveries of the campaign held (quiet hours, `tz user`) until `at` or earlier."""
        return self.one(f"SELECT count(*) FROM camp_deliveries WHERE campaign = ? AND status = '{Status.DEFERRED}' "
                        "AND not_before <= ?", (campaign, at))

    def midway(self, campaign: str, before: str, step: str) -> int:
        """Users sent `before` who have no delivery of `step` (the one after it) in that occurrence yet."""
        return self.one(f"SELECT count(*) FROM camp_deliveries d WHERE d.campaign = ? AND d.step = ? AND "
                        f"d.status = '{Status.SENT}' AND NOT EXISTS (SELECT 1 FROM camp_deliveries e WHERE "
                        "e.campaign = d.campaign AND e.step = ? AND e.occurrence = d.occurrence AND "
                        "e.user_id = d.user_id)", (campaign, before, step)) or 0

    # ------------------------------------------------------------ journeys
    def sent_untaken_frame(self, campaign: str, previous: str, occurrence: str, latest: datetime,
                           step: str) -> pd.DataFrame:
        """(user_id, due_at) of the users sent `previous` in the occurrence by `latest` whom no part of
        `step`'s snapshot has taken yet, by user id."""
        return self.frame(f"SELECT d.user_id, d.due_at FROM camp_deliveries d WHERE d.campaign = ? AND d.step = ? "
                          f"AND d.occurrence = ? AND d.status = '{Status.SENT}' AND d.due_at <= ? AND NOT EXISTS "
                          "(SELECT 1 FROM camp_recipients r WHERE r.campaign = d.campaign AND r.step = ? AND "
                          "r.occurrence = d.occurrence AND r.user_id = d.user_id) ORDER BY d.user_id",
                          (campaign, previous, occurrence, latest, step))

    def sent_times_frame(self, campaign: str, step: str, occurrence: str) -> pd.DataFrame:
        """(user_id, since): when each user was sent `step` in the occurrence."""
        return self.frame(f"SELECT user_id, due_at AS since FROM camp_deliveries WHERE campaign = ? AND step = ? "
                          f"AND occurrence = ? AND status = '{Status.SENT}'", (campaign, step, occurrence))

    def sent_due_times(self, campaign: str, step: str, occurrence: str) -> list[datetime]:
        """The distinct due times of the step's sends in the occurrence."""
        return [t for (t,) in self.rows(f"SELECT DISTINCT due_at FROM camp_deliveries WHERE campaign = ? AND "
                                        f"step = ? AND occurrence = ? AND status = '{Status.SENT}'",
                                        (campaign, step, occurrence))]

    def sent_untaken(self, campaign: str, previous: str, latest: datetime, step: str) -> list[SentAt]:
        """The sends of `previous` (any occurrence) by `latest` whose user no part of `step` has taken."""
        return [SentAt(*r) for r in self.rows(
            f"SELECT d.occurrence, d.due_at FROM camp_deliveries d WHERE d.campaign = ? AND d.step = ? AND "
            f"d.status = '{Status.SENT}' AND d.due_at <= ? AND NOT EXISTS (SELECT 1 FROM camp_recipients r WHERE "
            "r.campaign = d.campaign AND r.step = ? AND r.occurrence = d.occurrence AND r.user_id = d.user_id)",
            (campaign, previous, latest, step))]


def open_ledger(url: str) -> Ledger:
    """The ledger at `url`, its pending migrations applied."""
    ledger = Ledger(url)
    ledger.migrate()
    return ledger
