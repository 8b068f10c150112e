"""An alert's occurrence -> its evaluation and, when the threshold is crossed, one message to its team.

    run_alert(program, alert, teams, channels, warehouse, ledger, as_of, dry_run) -> AlertOutcome

The occurrence is the alert schedule's latest fire time at or before `as_of` (compiler.schedule, like a
campaign's); before its first fire time (or outside its dates) nothing is evaluated. The count, the population
and the sample are SQL on the warehouse as of `as_of` (compiler.alert_sql). A crossed threshold records the
evaluation `pending` in the ledger, sends the message through the team's channel (idempotency key
`alert/NAME/OCCURRENCE`: a receiver that honours it sees it once even after a crash between sending and
recording) and records it `sent`; once sent, later runs of the same occurrence change nothing. Below the
threshold the evaluation is recorded `below` and a later run of the occurrence may evaluate again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from compiler.alert_sql import alert_sql
from compiler.config import TeamSection
from compiler.program import Alert, Program
from compiler.schedule import latest_fire, schedule_plan
from runtime.channels import Message, make_channel
from runtime.ledger.alerts import AlertLedger, AlertRow
from runtime.ledger.status import AlertState
from runtime.warehouse import Warehouse

_OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}


@dataclass
class AlertOutcome:
    alert: str
    occurrence: datetime | None  # None: not due (before its first fire time, or outside its dates)
    matched: int = 0
    population: int = 0
    crossed: bool = False
    state: str = "not due"  # not due | below | sent | failed | already sent | would send (dry run)
    sample: list[str] | None = None
    error: str | None = None

    @property
    def share(self) -> Decimal | None:
        return Decimal(self.matched) / Decimal(self.population) if self.population else None


def run_alert(program: Program, alert: Alert, team: TeamSection, channels: dict, warehouse: Warehouse,
              ledger: AlertLedger, as_of: datetime, dry_run: bool = False) -> AlertOutcome:
    as_of = as_of.astimezone(UTC)
    plan = schedule_plan(alert.schedule) if alert.schedule is not None else None
    fire = latest_fire(plan, as_of)
    out = AlertOutcome(alert.name, fire)
    if fire is None:
        return out
    occurrence = fire.isoformat()
    old = ledger.alert_row(alert.name, occurrence)
    if old is not None and old.state == AlertState.SENT:
        out.state, out.matched, out.population = "already sent", old.matched, old.population
        return out
    q = alert_sql(program, alert, as_of, warehouse.dialect)
    out.matched = int(warehouse.rows(q.count)[0][0])
    out.population = int(warehouse.rows(q.population)[0][0])
    out.sample = [str(r[0]) for r in warehouse.rows(q.sample)] if alert.sample else []
    measured = out.share if alert.measure == "share" else Decimal(out.matched)
    out.crossed = measured is not None and _OPS[alert.op](measured, alert.value)
    subject, body = message_text(program, alert, out, fire)
    if dry_run:
        out.state = "would send" if out.crossed else AlertState.BELOW.value
        return out
    state = AlertState.PENDING if out.crossed else AlertState.BELOW
    row = AlertRow(alert.name, occurrence, as_of, out.matched, out.population, alert.measure, alert.op, alert.value,
                   alert.team, team.channel, json.dumps(out.sample), subject, body, state.value, None, None, None, 0)
    if not ledger.record_alert(row):
        out.state = "already sent"
        return out
    if not out.crossed:
        out.state = AlertState.BELOW.value
        return out
    key = f"alert/{alert.name}/{occurrence}"
    message = Message(key=key, campaign=f"alert:{alert.name}", step="alert", occurrence=occurrence,
                      user_id=f"team:{alert.team}", channel=team.channel, address=team.address, subject=subject,
                      body=body, plan_hash="", data={"alert": alert.name, "title": alert.title, "team": alert.team,
                                                     "matched": out.matched, "population": out.population,
                                                     "share": float(out.share) if out.share is not None else None,
                                                     "threshold": {"measure": alert.measure, "op": alert.op,
                                                                   "value": float(alert.value)},
                                                     "sample": out.sample, "as_of": as_of.isoformat()})
    adapter = make_channel(team.channel, channels)
    try:
        provider_id = adapter.send(message)
    except Exception as exc:  # noqa: BLE001 (any channel's failure is the alert's failure, recorded, retried)
        out.state, out.error = AlertState.FAILED.value, f"{type(exc).__name__}: {exc}"
        ledger.alert_failed(alert.name, occurrence, out.error)
        return out
    finally:
        adapter.close()
    ledger.alert_sent(alert.name, occurrence, datetime.now(UTC), provider_id)
    out.state = AlertState.SENT.value
    return out


def message_text(program: Program, alert: Alert, out: AlertOutcome, fire: datetime) -> tuple[str, str]:
    """The subject and body of the alert's message: the count, the share of all users, the threshold, a sample."""
    title = alert.title or alert.name
    share = f"{out.share:.2%}" if out.share is not None else "-"
    limit = f"{alert.value:.2%}" if alert.measure == "share" else f"{int(alert.value):,}"
    subject = f"[camp alert] {title}: {out.matched:,} users ({share})"
    lines = [f"{title} ({alert.name})", "",
             f"{out.matched:,} of {out.population:,} users ({share}) meet the alert's condition; threshold "
             f"{alert.measure} {alert.op} {limit}.",
             f"Period: the occurrence of {fire.astimezone(_zone(program)):%Y-%m-%d %H:%M %Z}."]
    if out.sample:
        lines += ["", f"Sample ({len(out.sample)} by user id): {', '.join(out.sample)}"]
    if alert.owner:
        lines += ["", f"Owner: {alert.owner}"]
    return subject, "\n".join(lines)


def _zone(program: Program):
    from zoneinfo import ZoneInfo

    return ZoneInfo(program.timezone)
