"""Old deliveries and snapshots moved out of the tables runs read (`camp ledger archive`), by the rule of
runtime.retention: what no decision at the rule's as-of or later can read.

An occurrence (a campaign's occurrence, every step of it) is archived when all of these hold:
    every delivery of it is settled (none pending, dispatching or deferred);
    every delivery is due before the horizon (no cap with a window and no exclusive hold sees it again);
    every step of it that has deliveries has a finished run and none running (a crashed run may still resume);
    its journey is over: each follow-up has decided every user its previous step was sent to.
Its deliveries move to camp_deliveries_archive and its snapshot to camp_recipients_archive, in one transaction
under the decision lock (nothing is lost or kept twice: a row is in one table or the other), except the deliveries
something may still read, which stay: those a cap without a window counts, those with a coupon not yet redeemed,
expired or void, a points credit still pending, or a red packet grant (its shares are paid against it). Each
archived step is recorded in camp_archived; a run of it is refused from then on, and so is a run whose caps or
hold would look back past an archive's horizon (runtime.engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runtime.ledger.connection import Connection
from runtime.ledger.status import COUNTED, CouponState, PointsState, RunStatus, Status

if TYPE_CHECKING:
    from runtime.retention import ArchiveRule

_LIVE = (Status.PENDING, Status.DISPATCHING, Status.DEFERRED)
_COLS = ("idempotency_key, campaign, step, occurrence, user_id, arm, channel, status, reason, cost, currency, "
         "coupon_id, provider_message_id, plan_hash, run_id, exclusive_group, due_at, not_before, decided_at, "
         "sent_at, attempts, error")


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


@dataclass(frozen=True)
class Archived:
    """What one `archive` moved: occurrences (campaign, occurrence) archived, deliveries moved and kept (of those
    occurrences), snapshot rows moved; steps: (campaign, step, occurrence, moved, kept, recipients) each."""

    occurrences: int
    moved: int
    kept: int
    recipients: int
    steps: list[tuple[str, str, str, int, int, int]]


class ArchiveLedger(Connection):
    def archive(self, rule: ArchiveRule, dry_run: bool = False) -> Archived:
        """Move what `rule` (runtime.retention.ArchiveRule) says no decision reads; `dry_run`: only count."""
        with self.decision():
            chosen = self._archivable(rule)
            self.backend.fresh_temp_table(self.db.conn, "camp_archiving", "campaign text, occurrence text")
            self.bulk_insert("camp_archiving", ["campaign", "occurrence"], chosen)
            keep, params = self._kept(rule)
            on = "a.campaign = {t}.campaign AND a.occurrence = {t}.occurrence"
            steps = {(c, s, o): [int(m), int(k), 0] for c, s, o, m, k in self.rows(
                f"SELECT d.campaign, d.step, d.occurrence, count(*) FILTER (WHERE NOT ({keep})), "
                f"count(*) FILTER (WHERE {keep}) FROM camp_deliveries d JOIN camp_archiving a ON {on.format(t='d')} "
                "GROUP BY d.campaign, d.step, d.occurrence", params + params)}
            for c, s, o, n in self.rows(f"SELECT r.campaign, r.step, r.occurrence, count(*) FROM camp_recipients r "
                                        f"JOIN camp_archiving a ON {on.format(t='r')} GROUP BY r.campaign, r.step, "
                                        "r.occurrence"):
                steps.setdefault((c, s, o), [0, 0, 0])[2] = int(n)
            if not dry_run and steps:
                at = datetime.now(UTC)
                self.execute(f"INSERT INTO camp_deliveries_archive SELECT {_COLS}, ? FROM camp_deliveries d WHERE "
                             f"EXISTS (SELECT 1 FROM camp_archiving a WHERE {on.format(t='d')}) AND NOT ({keep})",
                             (at, *params))
                self.execute("DELETE FROM camp_deliveries WHERE idempotency_key IN (SELECT idempotency_key FROM "
                             "camp_deliveries_archive WHERE archived_at = ?)", (at,))
                self.execute("INSERT INTO camp_recipients_archive SELECT campaign, step, occurrence, seq, user_id, "
                             f"held_out, data, ? FROM camp_recipients r WHERE EXISTS (SELECT 1 FROM camp_archiving a "
                             f"WHERE {on.format(t='r')})", (at,))
                self.execute(f"DELETE FROM camp_recipients WHERE EXISTS (SELECT 1 FROM camp_archiving a WHERE "
                             f"{on.format(t='camp_recipients')})")
                for (c, s, o), (moved, kept, recipients) in steps.items():
                    self.execute("INSERT INTO camp_archived VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, "
                                 "step, occurrence) DO UPDATE SET archived_at = excluded.archived_at, as_of = "
                                 "excluded.as_of, horizon = excluded.horizon, deliveries = camp_archived.deliveries + "
                                 "excluded.deliveries, kept = excluded.kept, recipients = camp_archived.recipients + "
                                 "excluded.recipients", (c, s, o, at, rule.as_of, rule.horizon, moved, kept, recipients))
        rows = sorted((c, s, o, m, k, r) for (c, s, o), (m, k, r) in steps.items())
        return Archived(len(chosen), sum(r[3] for r in rows), sum(r[4] for r in rows), sum(r[5] for r in rows), rows)

    def _archivable(self, rule: ArchiveRule) -> list[tuple[str, str]]:
        """(campaign, occurrence) of the occurrences the rule lets go (the module's four conditions)."""
        settled = set(self.rows(
            "SELECT campaign, occurrence FROM camp_deliveries GROUP BY campaign, occurrence HAVING max(due_at) < ? "
            f"AND count(*) FILTER (WHERE status IN {_in(_LIVE)}) = 0", (rule.horizon,)))
        if not settled:
            return []
        unfinished = set(self.rows(
            "SELECT DISTINCT d.campaign, d.occurrence FROM (SELECT DISTINCT campaign, step, occurrence FROM "
            "camp_deliveries) d WHERE NOT EXISTS (SELECT 1 FROM camp_runs r WHERE r.campaign = d.campaign AND "
            f"r.step = d.step AND r.occurrence = d.occurrence AND r.status = '{RunStatus.FINISHED}') OR EXISTS "
            "(SELECT 1 FROM camp_runs r WHERE r.campaign = d.campaign AND r.step = d.step AND r.occurrence = "
            f"d.occurrence AND r.status = '{RunStatus.RUNNING}' AND NOT r.dry_run)"))
        for campaign, previous, step in rule.journeys:
            unfinished.update(self.rows(
                "SELECT DISTINCT p.campaign, p.occurrence FROM camp_deliveries p WHERE p.campaign = ? AND p.step = ? "
                f"AND p.status = '{Status.SENT}' AND NOT EXISTS (SELECT 1 FROM camp_deliveries f WHERE f.campaign = "
                "p.campaign AND f.step = ? AND f.occurrence = p.occurrence AND f.user_id = p.user_id)",
                (campaign, previous, step)))
        return sorted((str(c), str(o)) for c, o in settled - unfinished)

    def _kept(self, rule: ArchiveRule) -> tuple[str, list]:
        """The SQL condition (on `d`, a camp_deliveries row) of a delivery something may still read, and its
        parameters."""
        parts, params = [], []
        for channel, campaign in rule.forever:
            cond = [f"d.channel IS NOT NULL AND d.status IN {_in(COUNTED)}"]
            for sql, value in (("d.channel = ?", channel), ("d.campaign = ?", campaign)):
                if value is not None:
                    cond.append(sql)
                    params.append(value)
            parts.append("(" + " AND ".join(cond) + ")")
        parts.append("EXISTS (SELECT 1 FROM camp_coupons c WHERE c.idempotency_key = d.idempotency_key AND c.state "
                     f"IN {_in((CouponState.RESERVED, CouponState.ISSUED))})")
        parts.append("EXISTS (SELECT 1 FROM camp_points p WHERE p.idempotency_key = d.idempotency_key AND p.state = "
                     f"'{PointsState.PENDING}')")
        parts.append("EXISTS (SELECT 1 FROM camp_red_packets g WHERE g.idempotency_key = d.idempotency_key)")
        return " OR ".join(parts), params

    def archived_step(self, campaign: str, step: str, occurrence: str) -> datetime | None:
        """When the occurrence's step was archived (None: never)."""
        return self.one("SELECT max(archived_at) FROM camp_archived WHERE campaign = ? AND step = ? AND occurrence = ?",
                        (campaign, step, occurrence))

    def archive_horizon(self) -> datetime | None:
        """The latest horizon an archive moved deliveries before (None: nothing archived)."""
        return self.one("SELECT max(horizon) FROM camp_archived")
