"""The ledger's named queries: every statement camp's commands, journeys, arbitration and deploy make
against the ledger, as methods returning typed rows (`runtime.ledger.rows`) or plain values.

Statuses come from the enums (`runtime.ledger.status`) and are written into the SQL text as literals, the
way the statements always read: fixed words of camp's own, never user text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runtime.ledger.alerts import AlertLedger
from runtime.ledger.archive import ArchiveLedger
from runtime.ledger.labels import LabelLedger
from runtime.ledger.outcomes import OutcomeLedger
from runtime.ledger.redemptions import CouponLedger
from runtime.ledger.resources import ResourceLedger
from runtime.ledger.rows import (
    CountedRow,
    CouponRow,
    DeliveryRow,
    KeyedCouponRow,
    PendingRow,
    RecipientRow,
    RunRow,
    SentAt,
    StatusCount,
)
from runtime.ledger.status import RUN_OVER, CouponState, RunStatus, Status
from runtime.ledger.tags import TagLedger
from runtime.warehouse import exists

if TYPE_CHECKING:
    import pandas as pd

    from compiler.plan import StepPlan

Occurrence = tuple[str, str, str]  # (campaign, step, occurrence)

_RUN_LOCK = 7_262_003  # pg_advisory_lock(_RUN_LOCK, run key): held by a live run's ledger session
_SNAPSHOT = "SELECT recipients FROM camp_snapshots WHERE campaign = ? AND step = ? AND occurrence = ?"
RECIPIENT_COLS = ["campaign", "step", "occurrence", "seq", "user_id", "held_out", "data"]
DELIVERY_COLS = ["idempotency_key", "campaign", "step", "occurrence", "user_id", "arm", "channel", "status", "reason",
                 "cost", "currency", "coupon_id", "provider_message_id", "plan_hash", "run_id", "exclusive_group",
                 "due_at", "not_before", "decided_at", "sent_at", "attempts", "error"]
COUPON_COLS = ["coupon_id", "idempotency_key", "campaign", "code", "user_id", "value", "currency", "min_spend",
               "scope", "state", "reserved_at", "issued_at", "usable_from", "usable_to", "redeemed_at"]
OUTBOX_COLS = ["idempotency_key", "campaign", "step", "occurrence", "user_id", "channel", "address", "subject", "body",
               "plan_hash", "created_at"]


def _run_key(run_id: str) -> int:
    """The second key of a run's liveness lock: 32 signed bits of sha256(run id)."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:4], "big", signed=True)


class Ledger(CouponLedger, OutcomeLedger, ResourceLedger, AlertLedger, TagLedger, LabelLedger, ArchiveLedger):
    """Every named query; the coupon lifecycle after issue (`camp sync`) is CouponLedger's, outcomes (`camp
    report`) OutcomeLedger's, points, red packets and actual spend ResourceLedger's, alerts AlertLedger's,
    manual tags TagLedger's, materialised labels' history (`camp materialize`) LabelLedger's, moving old rows out
    (`camp ledger archive`) ArchiveLedger's."""

    # ------------------------------------------------------------ a run's record (the engine)
    def start_run(self, run_id: str, plan: StepPlan, plan_hash: str, as_of: datetime,
                  flow_run_id: str | None) -> None:
        """Record the run as `running` (and its plan, once). On PostgreSQL the run's ledger session then
        holds an advisory lock named after the run for as long as it lives (the server drops it when a
        killed process's session ends): that is how a later run tells a dead `running` row from a live one
        (`interrupt_dead_runs`)."""
        with self.transaction():
            if self.one("SELECT count(*) FROM camp_plans WHERE plan_hash = ?", (plan_hash,)) == 0:
                self.execute("INSERT INTO camp_plans VALUES (?, ?, ?, ?, ?, ?)",
                             (plan_hash, plan.campaign, plan.step, plan.occurrence, plan.canonical(), datetime.now(UTC)))
            self.execute("INSERT INTO camp_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (run_id, plan.campaign, plan.step, plan.occurrence, as_of, plan_hash, False,
                          RunStatus.RUNNING, flow_run_id, datetime.now(UTC), None, None))
        self.backend.hold(self, _RUN_LOCK, _run_key(run_id))

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.execute("UPDATE camp_runs SET status = ?, finished_at = ?, summary = ? WHERE run_id = ?",
                     (status, datetime.now(UTC), json.dumps(summary, default=str), run_id))
        self.backend.release(self, _RUN_LOCK, _run_key(run_id))

    def interrupt_dead_runs(self, occ: Occurrence, run_id: str) -> list[str]:
        """Mark `interrupted` the other runs of the occurrence still recorded `running` whose process is
        gone (run_id takes over their work); their ids. PostgreSQL: a run is alive while its session holds
        its lock; DuckDB: one process writes the file at a time, and it is this one, so every other
        `running` row of the occurrence is dead."""
        dead = []
        for (rid,) in self.rows(f"SELECT run_id FROM camp_runs WHERE campaign = ? AND step = ? AND occurrence = ? "
                                f"AND status = '{RunStatus.RUNNING}' AND run_id <> ?", (*occ, run_id)):
            if self.backend.held_elsewhere(self, _RUN_LOCK, _run_key(rid)):
                continue  # alive: another process is running the same occurrence right now
            self.execute(f"UPDATE camp_runs SET status = '{RunStatus.INTERRUPTED}', finished_at = ?, summary = ? "
                         f"WHERE run_id = ? AND status = '{RunStatus.RUNNING}'",
                         (datetime.now(UTC), json.dumps({"interrupted": True, "taken_over_by": run_id}), rid))
            dead.append(rid)
        return dead

    # ------------------------------------------------------------ snapshots (the engine)
    def snapshot_size(self, occ: Occurrence) -> int | None:
        """How many recipients the occurrence's snapshot holds; None before its first run took one."""
        n = self.one(_SNAPSHOT, occ)
        return int(n) if n is not None else None

    def snapshot_part(self, occ: Occurrence, part: str) -> tuple[int, int] | None:
        """The seq range [lo, hi) a follow-up's part already took, if any."""
        row = self.rows("SELECT lo, hi FROM camp_snapshot_parts WHERE campaign = ? AND step = ? AND occurrence = ? "
                        "AND part = ?", (*occ, part))
        return (int(row[0][0]), int(row[0][1])) if row else None

    def add_recipients(self, occ: Occurrence, plan_hash: str, lo: int, users: list[str], held_out: list[bool],
                       data: list[str] | str, part: str | None) -> None:
        """Append recipients (their ids, holdout flags and data, or one data text for all) to the occurrence's
        snapshot as seq lo, lo + 1, ..., and the part they make when the step is a follow-up. Call it inside
        `decision()`."""
        n = len(users)
        self.insert_columns("camp_recipients", dict(zip(RECIPIENT_COLS, (*occ, range(lo, lo + n), users, held_out,
                                                                         data), strict=True)), n)
        self._snapshot_taken(occ, plan_hash, lo, n, part)

    def _snapshot_taken(self, occ: Occurrence, plan_hash: str, lo: int, n: int, part: str | None) -> None:
        """The occurrence's snapshot size after `n` recipients from seq `lo`, and the part they make."""
        # a first part of no users leaves a snapshot of 0 (a later part starts at 0 again)
        self.execute("INSERT INTO camp_snapshots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, step, occurrence) "
                     "DO UPDATE SET recipients = excluded.recipients", (*occ, plan_hash, lo + n, datetime.now(UTC)))
        if part is not None:
            self.execute("INSERT INTO camp_snapshot_parts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (*occ, part, lo, lo + n, plan_hash, datetime.now(UTC)))

    def recipient_rows(self, occ: Occurrence, lo: int, hi: int) -> list[RecipientRow]:
        """The snapshot's users with seq in [lo, hi), in order."""
        return [RecipientRow(*r) for r in self.rows(
            "SELECT seq, user_id, held_out, data FROM camp_recipients WHERE campaign = ? AND step = ? AND "
            "occurrence = ? AND seq >= ? AND seq < ? ORDER BY seq", (*occ, lo, hi))]

    # ------------------------------------------------------------ what a decision reads (the engine)
    def decided_users(self, occ: Occurrence, key_prefix: str, users: list[str]) -> set[str]:
        """Which of these users already have a delivery of the occurrence."""
        return self.backend.decided(self, occ, key_prefix, users)

    def counted_deliveries(self, users: list[str], statuses: Iterable[Status], since: datetime) -> list[CountedRow]:
        """These users' deliveries in these statuses (any campaign) due at `since` or later."""
        listed = ", ".join(f"'{s}'" for s in statuses)
        mine, params = self.among("user_id", users, "camp_counted_users")
        return [CountedRow(*r) for r in self.rows(
            f"SELECT idempotency_key, user_id, campaign, channel, due_at, exclusive_group FROM camp_deliveries WHERE "
            f"{mine} AND status IN ({listed}) AND due_at >= ?", (*params, since))]

    def seen_by_user(self, statuses: Iterable[Status], since: datetime,
                     counts: list[tuple[str | None, str | None, datetime | None, int] | None],
                     hold: tuple[str, str, datetime] | None, users: list[str] | None,
                     snapshot: tuple[str, str, str] | None = None) -> list[tuple]:
        """One row per user whose deliveries in these statuses (any campaign) due at `since` or later reach a count's
        floor or make a holder: (user_id, one count per entry of `counts`, holder). An entry (channel, campaign,
        start, floor) counts the deliveries with a channel, of that channel and that campaign when given, due at
        `start` or later when given, and keeps the user when the count is at least `floor` (> 0); None counts
        nothing (0). `hold` (group, campaign, start): the holder is the least campaign name, other than that
        campaign, with a delivery of the group due at `start` or later (else NULL). users None: every user.
        One aggregate over the window, whatever the number of users, returning only the users a cap or the hold
        may stop: the set operation that replaces reading each batch's rows (runtime.history.seen_counts).
        `snapshot` (campaign, step, occurrence): only the users of that occurrence's snapshot (a semi-join with
        camp_recipients), so that the users of other campaigns never leave the database."""
        cols, params, keep = [], [], []
        for i, entry in enumerate(counts):
            if entry is None:
                cols.append(f"0 AS n{i}")
                continue
            channel, campaign, start, floor = entry
            cond = ["channel IS NOT NULL"]
            for sql, value in (("channel = ?", channel), ("campaign = ?", campaign), ("due_at >= ?", start)):
                if value is not None:
                    cond.append(sql)
                    params.append(value)
            cols.append(f"count(*) FILTER (WHERE {' AND '.join(cond)}) AS n{i}")
            keep.append(f"n{i} >= {int(floor)}")
        if hold is not None:
            cols.append("min(campaign) FILTER (WHERE exclusive_group = ? AND campaign <> ? AND due_at >= ?) AS holder")
            params.extend(hold)
            keep.append("holder IS NOT NULL")
        else:
            cols.append("NULL AS holder")
        if not keep:
            return []
        listed = ", ".join(f"'{s}'" for s in statuses)
        where = f"status IN ({listed}) AND due_at >= ?"
        params.append(since)
        if users is not None:
            mine, listed_users = self.among("user_id", users, "camp_seen_users")
            where += f" AND {mine}"
            params.extend(listed_users)
        if snapshot is not None:
            where += (" AND user_id IN (SELECT user_id FROM camp_recipients WHERE campaign = ? AND step = ? AND "
                      "occurrence = ?)")
            params.extend(snapshot)
        return self.rows(f"SELECT * FROM (SELECT user_id, {', '.join(cols)} FROM camp_deliveries WHERE {where} "
                         f"GROUP BY user_id) counted WHERE {' OR '.join(keep)}", params)

    def held_coupons(self, users: list[str]) -> list[CouponRow]:
        """The coupons given to these users (any campaign; not void ones, whose message never went out), each
        with whether it is still unused: reserved or issued, not redeemed by an order (`camp sync`) nor expired.
        Unused-coupon caps count the unused ones; `cap N coupons per user per D` counts every one given."""
        mine, params = self.among("user_id", users, "camp_coupon_users")
        return [CouponRow(*r) for r in self.rows(
            f"SELECT user_id, code, campaign, reserved_at, usable_to, state IN ('{CouponState.RESERVED}', "
            f"'{CouponState.ISSUED}') FROM camp_coupons WHERE {mine} AND state <> '{CouponState.VOID}'", params)]

    def spend(self, campaign: str) -> dict[date, Decimal]:
        """What the campaign spent, per day."""
        return {d: Decimal(a) for d, a in self.rows("SELECT day, amount FROM camp_spend WHERE campaign = ?",
                                                    (campaign,))}

    # ------------------------------------------------------------ what a decision writes (the engine)
    def record_decisions(self, deliveries: list[tuple], coupons: list[tuple], outbox: list[tuple]) -> None:
        """A batch's decided rows (DELIVERY_COLS, COUPON_COLS, OUTBOX_COLS). Call it inside `decision()`."""
        self.bulk_insert("camp_deliveries", DELIVERY_COLS, deliveries)
        self.bulk_insert("camp_coupons", COUPON_COLS, coupons)
        self.bulk_insert("camp_outbox", OUTBOX_COLS, outbox)

    def add_spend(self, campaign: str, day: date, amount: Decimal) -> None:
        """Add to (or, negative, give back to) the campaign's spend of the day."""
        self.execute("INSERT INTO camp_spend VALUES (?, ?, ?) ON CONFLICT (campaign, day) DO UPDATE SET "
                     "amount = camp_spend.amount + excluded.amount", (campaign, day, amount))

    def coupons_by_key(self, keys: list[str]) -> list[KeyedCouponRow]:
        """The coupons of these deliveries."""
        return [KeyedCouponRow(*r) for r in self.rows(
            f"SELECT coupon_id, idempotency_key, code, issued_at, reserved_at, usable_from, usable_to FROM "
            f"camp_coupons WHERE {self.in_list('idempotency_key')}", (keys,))]

    # ------------------------------------------------------------ dispatch (the engine)
    def sent_to_outbox(self, outbox: list[tuple], keys: list[str], at: datetime) -> None:
        """One transaction: the messages into the outbox (OUTBOX_COLS), their deliveries sent, their coupons
        issued."""
        with self.transaction():
            self.bulk_insert("camp_outbox", OUTBOX_COLS, outbox)
            if keys:
                self.execute(f"UPDATE camp_deliveries SET status = '{Status.SENT}', sent_at = ?, "
                             "attempts = attempts + 1, provider_message_id = 'outbox:' || idempotency_key WHERE "
                             f"{self.in_list('idempotency_key')}", (at, keys))
                self.execute(f"UPDATE camp_coupons SET state = '{CouponState.ISSUED}', issued_at = reserved_at WHERE "
                             f"{self.in_list('idempotency_key')} AND state = '{CouponState.RESERVED}'", (keys,))

    def mark_dispatching(self, keys: list[str]) -> None:
        """Pending deliveries handed to their channel now (a crash leaves them to be resent, same key)."""
        self.execute(f"UPDATE camp_deliveries SET status = '{Status.DISPATCHING}', attempts = attempts + 1 WHERE "
                     f"{self.in_list('idempotency_key')} AND status = '{Status.PENDING}'", (keys,))

    def back_to_pending(self, keys: list[str], error: str) -> None:
        """Deliveries left for the next run of the occurrence (their channel is down)."""
        self.execute(f"UPDATE camp_deliveries SET status = '{Status.PENDING}', error = ? WHERE "
                     f"{self.in_list('idempotency_key')}", (error, keys))

    def mark_sent(self, rows: list[tuple[str, datetime, str | None]]) -> None:
        """Deliveries their channel took, (key, when, provider message id) each, and their coupons issued, in one
        transaction. A key at a time for one row; for more, one join with a TEMP table of them: an UPDATE per key
        costs ~4 ms on DuckDB, which held concurrent dispatch to ~130 messages/s (bench/dispatch.py)."""
        if len(rows) == 1:
            (key, at, provider_message_id), = rows
            with self.transaction():
                self.execute(f"UPDATE camp_deliveries SET status = '{Status.SENT}', sent_at = ?, "
                             "provider_message_id = ? WHERE idempotency_key = ?", (at, provider_message_id, key))
                self.execute(f"UPDATE camp_coupons SET state = '{CouponState.ISSUED}', issued_at = reserved_at "
                             f"WHERE idempotency_key = ? AND state = '{CouponState.RESERVED}'", (key,))
            return
        with self.transaction():
            self.backend.fresh_temp_table(self.db.conn, "camp_sent_now",
                                          "idempotency_key text, sent_at timestamptz, provider_message_id text")
            self.bulk_insert("camp_sent_now", ["idempotency_key", "sent_at", "provider_message_id"], rows)
            self.execute(f"UPDATE camp_deliveries SET status = '{Status.SENT}', sent_at = s.sent_at, "
                         "provider_message_id = s.provider_message_id FROM camp_sent_now AS s "
                         "WHERE camp_deliveries.idempotency_key = s.idempotency_key")
            self.execute(f"UPDATE camp_coupons SET state = '{CouponState.ISSUED}', issued_at = reserved_at "
                         "FROM camp_sent_now AS s WHERE camp_coupons.idempotency_key = s.idempotency_key "
                         f"AND camp_coupons.state = '{CouponState.RESERVED}'")

    def mark_failed(self, failures: list[tuple[str, str, str]]) -> None:
        """Deliveries failed for good, (key, reason, error) each, and their reserved coupons void."""
        with self.transaction():
            for key, reason, error in failures:
                self.execute(f"UPDATE camp_deliveries SET status = '{Status.FAILED}', reason = ?, error = ? WHERE "
                             "idempotency_key = ?", (reason, error, key))
            keys = [key for key, _, _ in failures]
            if len(keys) == 1:  # a key lookup (DuckDB would scan the table for IN a list)
                self.execute(f"UPDATE camp_coupons SET state = '{CouponState.VOID}' WHERE idempotency_key = ? AND "
                             f"state = '{CouponState.RESERVED}'", (keys[0],))
            else:
                self.execute(f"UPDATE camp_coupons SET state = '{CouponState.VOID}' WHERE "
                             f"{self.in_list('idempotency_key')} AND state = '{CouponState.RESERVED}'", (keys,))

    # ------------------------------------------------------------ re-checks at release and fallback (the engine)
    def due_and_cost(self, keys: list[str], deferred_only: bool) -> dict[str, tuple[datetime, Decimal]]:
        """key -> (when it is due: not_before, else due_at; its cost). deferred_only: only rows still
        deferred (another run may have released them since they were read, and must not send them twice)."""
        mine_only = f" AND status = '{Status.DEFERRED}'" if deferred_only else ""
        return {k: (due, Decimal(cost)) for k, due, cost in self.rows(
            f"SELECT idempotency_key, coalesce(not_before, due_at), cost FROM camp_deliveries WHERE "
            f"{self.in_list('idempotency_key')}{mine_only}", (keys,))}

    def move_channel(self, key: str, channel: str, extra_cost: Decimal, due: datetime, error: str | None) -> None:
        """A delivery pending again, on another channel (or after an error), due at `due`."""
        self.execute(f"UPDATE camp_deliveries SET status = '{Status.PENDING}', channel = ?, cost = cost + ?, "
                     "due_at = ?, error = coalesce(?, error) WHERE idempotency_key = ?",
                     (channel, extra_cost, due, error, key))

    def suppress(self, key: str, reason: str, error: str | None) -> None:
        """A decided delivery suppressed after all (cost 0), its reserved coupon void."""
        self.execute(f"UPDATE camp_deliveries SET status = '{Status.SUPPRESSED}', reason = ?, cost = 0, "
                     "error = coalesce(?, error) WHERE idempotency_key = ?", (reason, error, key))
        self.execute(f"UPDATE camp_coupons SET state = '{CouponState.VOID}' WHERE idempotency_key = ? AND "
                     f"state = '{CouponState.RESERVED}'", (key,))

    def release_pending(self, keys: list[str]) -> None:
        """Deferred deliveries pending now, due when they were held until."""
        self.execute(f"UPDATE camp_deliveries SET status = '{Status.PENDING}', due_at = coalesce(not_before, due_at) "
                     f"WHERE {self.in_list('idempotency_key')}", (keys,))

    # ------------------------------------------------------------ recover and release (the engine)
    def _pending(self, where: str, params: tuple) -> list[PendingRow]:
        return [PendingRow(*r) for r in self.rows(
            "SELECT d.idempotency_key, d.user_id, d.arm, d.channel, d.coupon_id, r.seq, r.held_out, r.data "
            "FROM camp_deliveries d JOIN camp_recipients r ON r.campaign = d.campaign AND r.step = d.step "
            f"AND r.occurrence = d.occurrence AND r.user_id = d.user_id WHERE {where}", params)]

    def unsent(self, occ: Occurrence) -> list[PendingRow]:
        """What an earlier, killed attempt at the occurrence left pending or dispatching."""
        return self._pending(f"d.campaign = ? AND d.step = ? AND d.occurrence = ? AND d.status IN "
                             f"('{Status.PENDING}', '{Status.DISPATCHING}')", occ)

    def deferred_due_of_plan(self, plan_hash: str, at: datetime) -> list[PendingRow]:
        """The deliveries decided under this plan held until `at` or earlier."""
        return self._pending(f"d.plan_hash = ? AND d.status = '{Status.DEFERRED}' AND d.not_before <= ?",
                             (plan_hash, at))

    def deferred_plan_hashes(self, campaign: str, at: datetime) -> list[str]:
        """The plans the campaign's deliveries held until `at` or earlier were decided under."""
        return [h for (h,) in self.rows(f"SELECT DISTINCT plan_hash FROM camp_deliveries WHERE campaign = ? AND "
                                        f"status = '{Status.DEFERRED}' AND not_before <= ?", (campaign, at))]

    def first_deferred_plan_hash(self, campaign: str, at: datetime) -> str | None:
        """The least plan hash of those (a release run's record names that plan's step)."""
        return self.one(f"SELECT min(plan_hash) FROM camp_deliveries WHERE campaign = ? AND "
                        f"status = '{Status.DEFERRED}' AND not_before <= ?", (campaign, at))

    def plan_text(self, plan_hash: str) -> str:
        """A stored plan's canonical JSON. Every delivery's plan is stored before it is decided (`start`), so a
        missing one means the ledger was edited by hand."""
        text = self.one("SELECT plan FROM camp_plans WHERE plan_hash = ?", (plan_hash,))
        if text is None:
            raise LookupError(f"the ledger holds deliveries of plan {plan_hash[:16]} but not the plan itself")
        return text

    def defer(self, key: str, until: datetime) -> None:
        """Hold a delivery again (its user's quiet hours came back), due at `until`."""
        self.execute("UPDATE camp_deliveries SET not_before = ?, due_at = ? WHERE idempotency_key = ?",
                     (until, until, key))

    def deferred_times(self, campaign: str) -> list[datetime]:
        """The distinct times the campaign's deferred deliveries are held until."""
        return [t for (t,) in self.rows(f"SELECT DISTINCT not_before FROM camp_deliveries WHERE campaign = ? AND "
                                        f"status = '{Status.DEFERRED}'", (campaign,))]

    # ------------------------------------------------------------ summaries
    def status_counts(self, occ: Occurrence) -> list[StatusCount]:
        """The occurrence's deliveries per (status, reason), in that order."""
        return [StatusCount(*r) for r in self.rows(
            "SELECT status, reason, count(*), sum(cost) FROM camp_deliveries WHERE campaign = ? AND step = ? AND "
            "occurrence = ? GROUP BY status, reason ORDER BY status, reason", occ)]

    # ------------------------------------------------------------ runs (the CLI, arbitration)
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


def open_existing_ledger(url: str) -> Ledger | None:
    """The ledger at `url`, its pending migrations applied, when one was made there (its `camp_migrations` table
    exists); None, having created nothing (no DuckDB file, no table), when there is none yet. For commands that
    only read it (`camp report`, `runs`, `ledger`, `points`)."""
    if not exists(url):
        return None
    ledger = Ledger(url)
    try:
        if not ledger.has_table("camp_migrations"):
            ledger.close()
            return None
        ledger.migrate()
    except BaseException:
        ledger.close()
        raise
    return ledger
