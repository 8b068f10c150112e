"""Alerts in the ledger (migration 6): one `camp_alerts` row per alert and occurrence of its schedule, its last
evaluation and the state of its message to the team. The message goes out at most once per occurrence: `sent`
is final; `below` and `failed` are evaluated again by a later run of the same occurrence; `pending` (a crash
between recording and sending) is sent again with the same idempotency key."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from runtime.ledger.connection import Connection
from runtime.ledger.status import AlertState

_ALERT_LOCK = 7_262_005  # pg_advisory lock id of alert evaluations: one at a time
ALERT_COLS = ["alert", "occurrence", "evaluated_at", "matched", "population", "measure", "op", "threshold", "team",
              "channel", "sample", "subject", "body", "state", "sent_at", "provider_id", "error", "attempts"]


class AlertRow(NamedTuple):
    alert: str
    occurrence: str
    evaluated_at: datetime
    matched: int
    population: int
    measure: str
    op: str
    threshold: Decimal
    team: str
    channel: str
    sample: str  # JSON list of user ids
    subject: str | None
    body: str | None  # the message (also what the outbox channel leaves here for the team's systems)
    state: str
    sent_at: datetime | None
    provider_id: str | None
    error: str | None
    attempts: int


class AlertLedger(Connection):
    def alert_row(self, alert: str, occurrence: str) -> AlertRow | None:
        rows = self.rows(f"SELECT {', '.join(ALERT_COLS)} FROM camp_alerts WHERE alert = ? AND occurrence = ?",
                         (alert, occurrence))
        return AlertRow(*rows[0]) if rows else None

    def record_alert(self, row: AlertRow) -> bool:
        """Record an evaluation unless the occurrence's message was sent already; False when it was (nothing
        changed). One transaction: two runs of the same occurrence never both send."""
        with self.transaction():
            self.backend.lock_transaction(self, _ALERT_LOCK)
            old = self.alert_row(row.alert, row.occurrence)
            if old is not None and old.state == AlertState.SENT:
                return False
            if old is not None:
                self.execute("DELETE FROM camp_alerts WHERE alert = ? AND occurrence = ?", (row.alert, row.occurrence))
                row = row._replace(attempts=old.attempts)
            self.bulk_insert("camp_alerts", ALERT_COLS, [tuple(row)])
        return True

    def alert_sent(self, alert: str, occurrence: str, at: datetime, provider_id: str) -> None:
        self.execute("UPDATE camp_alerts SET state = ?, sent_at = ?, provider_id = ?, error = NULL, "
                     "attempts = attempts + 1 WHERE alert = ? AND occurrence = ?",
                     (AlertState.SENT.value, at, provider_id, alert, occurrence))

    def alert_failed(self, alert: str, occurrence: str, error: str) -> None:
        self.execute("UPDATE camp_alerts SET state = ?, error = ?, attempts = attempts + 1 WHERE alert = ? AND "
                     "occurrence = ?", (AlertState.FAILED.value, error[:500], alert, occurrence))

    def alert_history(self, alert: str | None = None) -> list[AlertRow]:
        where, params = ("WHERE alert = ?", (alert,)) if alert is not None else ("", ())
        return [AlertRow(*r) for r in self.rows(
            f"SELECT {', '.join(ALERT_COLS)} FROM camp_alerts {where} ORDER BY alert, occurrence", params)]
