"""Versioned ledger schema. Each migration runs once, in order, inside one transaction, and is
recorded in `camp_migrations`; `camp` applies pending ones itself before any run (never by hand).
Never edit a released migration: add the next one.

Statements are portable SQL (DuckDB and PostgreSQL); a statement tagged with a dialect runs only there.

The CHECK constraints are built from the status enums (`runtime.ledger.status`), each migration naming the
members it allows, so the SQL text of a released migration stays what it was when ledgers applied it
(`tests/runtime/test_ledger.py` pins that text). A new status is a new member *and* a new migration.

Why not Alembic: it works through SQLAlchemy, and DuckDB has no SQLAlchemy dialect among camp's pinned
dependencies (the third-party `duckdb_engine` would be one more driver layer for the one writer a DuckDB file
allows); DuckDB also cannot ALTER a CHECK constraint, which Alembic's batch mode would turn into the same table
copy migration 2 writes by hand. Camp's migrations are a handful of statements per version, applied in one
transaction under an advisory lock (`Ledger.migrate`): a numbered list does that with no new dependency.
"""

from __future__ import annotations

from runtime.ledger.status import (
    AlertState,
    BatchState,
    CouponState,
    PointsState,
    ShareState,
    Status,
    TagAction,
    TagEffect,
    check_list,
)

DELIVERY_STATUSES_1 = (Status.PENDING, Status.DISPATCHING, Status.DEFERRED, Status.SENT, Status.FAILED,
                       Status.HOLDOUT, Status.SUPPRESSED, Status.BUDGET_EXHAUSTED)
DELIVERY_STATUSES_2 = (*DELIVERY_STATUSES_1, Status.SKIPPED)  # 2: a journey's follow-up skipped the user
COUPON_STATES_1 = (CouponState.RESERVED, CouponState.ISSUED, CouponState.REDEEMED, CouponState.VOID)
COUPON_STATES_3 = (*COUPON_STATES_1, CouponState.EXPIRED)  # 3: unused past its validity and the late-data allowance
POINTS_STATES_4 = (PointsState.PENDING, PointsState.ISSUED, PointsState.VOID)
SHARE_STATES_4 = (ShareState.PAID, ShareState.REFUSED)
ALERT_STATES_6 = (AlertState.BELOW, AlertState.PENDING, AlertState.SENT, AlertState.FAILED)
TAG_ACTIONS_7 = (TagAction.ADD, TagAction.REMOVE)
BATCH_STATES_10 = (BatchState.OPEN, BatchState.CLAIMED, BatchState.DONE)
TAG_EFFECTS_7 = (TagEffect.ADDED, TagEffect.ALREADY, TagEffect.REMOVED, TagEffect.ABSENT)
_DELIVERY_STATUSES = check_list(DELIVERY_STATUSES_1)
_DELIVERY_STATUSES_2 = check_list(DELIVERY_STATUSES_2)


_COUPON_COLUMNS_1 = ("coupon_id, idempotency_key, campaign, code, user_id, value, currency, min_spend, scope, state, "
                     "reserved_at, issued_at, usable_from, usable_to, redeemed_at")
# what `camp sync` learns from the shop's orders (runtime.coupon_sync): the redeeming order's time and amount, the
# discount it got, whether the order was in the coupon's scope, validity and minimum spend; when it expired unused
_REDEMPTION_COLUMNS = (("redeemed_order_at", "timestamptz"), ("order_amount", "decimal(18, 2)"),
                       ("discount", "decimal(18, 2)"), ("redemption", "text"), ("expired_at", "timestamptz"))


def _coupons_3(name: str) -> str:
    added = ", ".join(f"{c} {t}" for c, t in _REDEMPTION_COLUMNS)
    return f"""CREATE TABLE {name} (
            coupon_id text PRIMARY KEY, idempotency_key text NOT NULL UNIQUE, campaign text NOT NULL,
            code text NOT NULL, user_id text NOT NULL, value decimal(18, 2) NOT NULL, currency text NOT NULL,
            min_spend decimal(18, 2), scope text NOT NULL,
            state text NOT NULL CHECK (state IN {check_list(COUPON_STATES_3, ', ')}),
            reserved_at timestamptz NOT NULL, issued_at timestamptz, usable_from timestamptz NOT NULL,
            usable_to timestamptz NOT NULL, redeemed_at timestamptz, {added})"""


_DELIVERY_COLUMNS = ("idempotency_key, campaign, step, occurrence, user_id, arm, channel, status, reason, cost, currency, "
                     "coupon_id, provider_message_id, plan_hash, run_id, exclusive_group, due_at, not_before, "
                     "decided_at, sent_at, attempts, error")


def _deliveries(name: str, statuses: str) -> str:
    return f"""CREATE TABLE {name} (
            idempotency_key text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            user_id text NOT NULL, arm text, channel text,
            status text NOT NULL CHECK (status IN {statuses}), reason text,
            cost decimal(18, 4) NOT NULL, currency text NOT NULL, coupon_id text, provider_message_id text,
            plan_hash text NOT NULL, run_id text NOT NULL, exclusive_group text,
            due_at timestamptz NOT NULL, not_before timestamptz, decided_at timestamptz NOT NULL,
            sent_at timestamptz, attempts integer NOT NULL, error text)"""


def _label_history(key: str) -> str:
    return f"""CREATE TABLE camp_label_history (
            name text NOT NULL, user_id text NOT NULL, label text NOT NULL,
            valid_from timestamptz NOT NULL, valid_to timestamptz{', ' + key if key else ''})"""


MIGRATIONS: list[tuple[int, str, list[tuple[str | None, str]]]] = [
    (1, "ledger: runs, plans, snapshots, deliveries, coupons, spend, outbox", [
        (None, """CREATE TABLE camp_plans (
            plan_hash text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            plan text NOT NULL, created_at timestamptz NOT NULL)"""),
        (None, """CREATE TABLE camp_runs (
            run_id text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            as_of timestamptz NOT NULL, plan_hash text NOT NULL, dry_run boolean NOT NULL, status text NOT NULL,
            flow_run_id text, started_at timestamptz NOT NULL, finished_at timestamptz, summary text)"""),
        (None, """CREATE TABLE camp_snapshots (
            campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, plan_hash text NOT NULL,
            recipients bigint NOT NULL, created_at timestamptz NOT NULL,
            PRIMARY KEY (campaign, step, occurrence))"""),
        (None, """CREATE TABLE camp_recipients (
            campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, seq bigint NOT NULL,
            user_id text NOT NULL, held_out boolean NOT NULL, data text NOT NULL,
            PRIMARY KEY (campaign, step, occurrence, seq))"""),
        (None, _deliveries("camp_deliveries", _DELIVERY_STATUSES)),
        ("postgres", "CREATE INDEX camp_deliveries_user ON camp_deliveries (user_id, due_at)"),
        ("postgres", "CREATE INDEX camp_deliveries_occurrence ON camp_deliveries (campaign, step, occurrence, status)"),
        (None, f"""CREATE TABLE camp_coupons (
            coupon_id text PRIMARY KEY, idempotency_key text NOT NULL UNIQUE, campaign text NOT NULL,
            code text NOT NULL, user_id text NOT NULL, value decimal(18, 2) NOT NULL, currency text NOT NULL,
            min_spend decimal(18, 2), scope text NOT NULL,
            state text NOT NULL CHECK (state IN {check_list(COUPON_STATES_1, ', ')}),
            reserved_at timestamptz NOT NULL, issued_at timestamptz, usable_from timestamptz NOT NULL,
            usable_to timestamptz NOT NULL, redeemed_at timestamptz)"""),
        ("postgres", "CREATE INDEX camp_coupons_user ON camp_coupons (user_id, state)"),
        (None, """CREATE TABLE camp_spend (
            campaign text NOT NULL, day date NOT NULL, amount decimal(18, 4) NOT NULL,
            PRIMARY KEY (campaign, day))"""),
        (None, """CREATE TABLE camp_outbox (
            idempotency_key text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            user_id text NOT NULL, channel text NOT NULL, address text, subject text, body text NOT NULL,
            plan_hash text NOT NULL, created_at timestamptz NOT NULL)"""),
    ]),
    (2, "journeys: skipped follow-ups, snapshot parts of follow-up steps", [
        ("postgres", "ALTER TABLE camp_deliveries DROP CONSTRAINT camp_deliveries_status_check"),
        ("postgres", f"ALTER TABLE camp_deliveries ADD CONSTRAINT camp_deliveries_status_check "
                     f"CHECK (status IN {_DELIVERY_STATUSES_2})"),
        # DuckDB cannot alter a CHECK constraint: copy into a table that has the new one
        ("duckdb", _deliveries("camp_deliveries_2", _DELIVERY_STATUSES_2)),
        ("duckdb", "INSERT INTO camp_deliveries_2 SELECT * FROM camp_deliveries"),
        ("duckdb", "DROP TABLE camp_deliveries"),
        ("duckdb", "ALTER TABLE camp_deliveries_2 RENAME TO camp_deliveries"),
        # a follow-up step's recipients arrive in parts, one per run, as users become due
        (None, """CREATE TABLE camp_snapshot_parts (
            campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, part text NOT NULL,
            lo bigint NOT NULL, hi bigint NOT NULL, plan_hash text NOT NULL, created_at timestamptz NOT NULL,
            PRIMARY KEY (campaign, step, occurrence, part))"""),
    ]),
    (3, "coupons: redemptions learnt from the shop's orders, expiry", [
        *[("postgres", f"ALTER TABLE camp_coupons ADD COLUMN {c} {t}") for c, t in _REDEMPTION_COLUMNS],
        ("postgres", "ALTER TABLE camp_coupons DROP CONSTRAINT camp_coupons_state_check"),
        ("postgres", f"ALTER TABLE camp_coupons ADD CONSTRAINT camp_coupons_state_check "
                     f"CHECK (state IN {check_list(COUPON_STATES_3, ', ')})"),
        # DuckDB cannot alter a CHECK constraint: copy into a table that has the new one (as migration 2 does)
        ("duckdb", _coupons_3("camp_coupons_3")),
        ("duckdb", f"INSERT INTO camp_coupons_3 ({_COUPON_COLUMNS_1}) SELECT {_COUPON_COLUMNS_1} FROM camp_coupons"),
        ("duckdb", "DROP TABLE camp_coupons"),
        ("duckdb", "ALTER TABLE camp_coupons_3 RENAME TO camp_coupons"),
        # `camp sync` reads the outstanding (issued) coupons; expiry reads them by usable_to
        ("postgres", "CREATE INDEX camp_coupons_outstanding ON camp_coupons (state, usable_to)"),
    ]),
    (4, "points credits, red packet grants and their shares' payouts", [
        # one credit per delivery that gives points, keyed by the delivery's idempotency key
        (None, f"""CREATE TABLE camp_points (
            idempotency_key text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            user_id text NOT NULL, points bigint NOT NULL, cost decimal(18, 4) NOT NULL, currency text NOT NULL,
            issuer text NOT NULL, state text NOT NULL CHECK (state IN {check_list(POINTS_STATES_4, ', ')}),
            created_at timestamptz NOT NULL, issued_at timestamptz, provider_id text, error text)"""),
        ("postgres", "CREATE INDEX camp_points_user ON camp_points (user_id, state)"),
        ("postgres", "CREATE INDEX camp_points_occurrence ON camp_points (campaign, step, occurrence, state)"),
        # one grant per delivery that gives a red packet, with the payout rule it was decided under
        (None, """CREATE TABLE camp_red_packets (
            idempotency_key text PRIMARY KEY, campaign text NOT NULL, packet text NOT NULL, user_id text NOT NULL,
            value decimal(18, 2) NOT NULL, currency text NOT NULL, decay decimal(9, 6), floor decimal(18, 2),
            fixed_after integer, reserved decimal(18, 4) NOT NULL, granted_at timestamptz NOT NULL)"""),
        ("postgres", "CREATE INDEX camp_red_packets_user ON camp_red_packets (user_id, granted_at)"),
        # one payout (or refusal) per share event, keyed by the event's id
        (None, f"""CREATE TABLE camp_red_packet_shares (
            share_id text PRIMARY KEY, grant_key text, campaign text, packet text, user_id text NOT NULL,
            nth integer NOT NULL, amount decimal(18, 2) NOT NULL, currency text,
            state text NOT NULL CHECK (state IN {check_list(SHARE_STATES_4, ', ')}), reason text,
            budget_extra decimal(18, 4) NOT NULL, shared_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL)"""),
        ("postgres", "CREATE INDEX camp_red_packet_shares_grant ON camp_red_packet_shares (grant_key)"),
    ]),
    (5, "sync watermarks: where each warehouse source was read up to", [
        # one row per source `camp sync` reads incrementally (red packet shares: `shares:<table>`): the latest
        # as-of it was read up to; the next sync reads from it less the source's late-data allowance
        (None, """CREATE TABLE camp_sync_marks (
            source text PRIMARY KEY, watermark timestamptz NOT NULL, updated_at timestamptz NOT NULL)"""),
    ]),
    (6, "alerts: one evaluation per alert and occurrence, and its message to the team", [
        (None, f"""CREATE TABLE camp_alerts (
            alert text NOT NULL, occurrence text NOT NULL, evaluated_at timestamptz NOT NULL,
            matched bigint NOT NULL, population bigint NOT NULL, measure text NOT NULL, op text NOT NULL,
            threshold decimal(18, 6) NOT NULL, team text NOT NULL, channel text NOT NULL, sample text NOT NULL,
            subject text, body text,
            state text NOT NULL CHECK (state IN {check_list(ALERT_STATES_6, ', ')}),
            sent_at timestamptz, provider_id text, error text, attempts integer NOT NULL,
            PRIMARY KEY (alert, occurrence))"""),
    ]),
    (7, "manual tags (`camp tag`) and their audit trail", [
        # who holds each manual tag now: one row per (tag, user), added by the audited change that added it
        (None, """CREATE TABLE camp_manual_tags (
            tag text NOT NULL, user_id text NOT NULL, added_at timestamptz NOT NULL, added_by text NOT NULL,
            change_id text NOT NULL, PRIMARY KEY (tag, user_id))"""),
        # every change, one row per user it named: what it did to that user (added, already there, removed,
        # not there), who, when, why and from where (users / file / audience, with the path)
        (None, f"""CREATE TABLE camp_tag_audit (
            change_id text NOT NULL, seq integer NOT NULL, tag text NOT NULL, user_id text NOT NULL,
            action text NOT NULL CHECK (action IN {check_list(TAG_ACTIONS_7, ', ')}),
            effect text NOT NULL CHECK (effect IN {check_list(TAG_EFFECTS_7, ', ')}),
            actor text NOT NULL, changed_at timestamptz NOT NULL, reason text, source text NOT NULL,
            PRIMARY KEY (change_id, seq))"""),
        ("postgres", "CREATE INDEX camp_tag_audit_tag ON camp_tag_audit (tag, changed_at)"),
    ]),
    (8, "materialised labels: history intervals per user and label, the materialisations made", [
        # one row per user and stretch of time a label held: [valid_from, valid_to), valid_to NULL while current, so a
        # label that does not change costs one row however many days are materialised
        # PostgreSQL guards one interval per user, name and start with a key; on DuckDB that index would triple the
        # cost of opening a million intervals (bench/materialize.py), and one process writes a DuckDB file at a time
        # inside the one transaction of LabelLedger.record_labels, which opens at most one per user
        ("postgres", _label_history("PRIMARY KEY (name, user_id, valid_from)")),
        ("duckdb", _label_history("")),
        ("postgres", "CREATE INDEX camp_label_history_open ON camp_label_history (name, user_id) WHERE valid_to IS NULL"),
        # one row per name and as-of time materialised: how far back the history reaches, what each run changed
        (None, """CREATE TABLE camp_materializations (
            name text NOT NULL, as_of timestamptz NOT NULL, users bigint NOT NULL, opened bigint NOT NULL,
            closed bigint NOT NULL, recorded_at timestamptz NOT NULL,
            PRIMARY KEY (name, as_of))"""),
    ]),
    (9, "channel rate limits shared by every process sending through a PostgreSQL ledger", [
        # one token bucket per channel (runtime/ratelimit.py): tokens left (negative: reserved ahead) at `at`, the
        # database's clock; a DuckDB ledger has one writing process, whose limiter stays in memory
        ("postgres", """CREATE TABLE camp_rate_limits (
            channel text PRIMARY KEY, tokens double precision NOT NULL, at timestamptz NOT NULL)"""),
    ]),
    (10, "batches of an occurrence claimed by parallel workers (runtime.claims)", [
        # one row per batch [lo, hi) of a run's recipients: open, claimed by a worker until its lease ends, or done
        # (with the worker's counts); a claim whose lease has ended is taken again by the next worker
        (None, f"""CREATE TABLE camp_batches (
            run_id text NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL,
            state text NOT NULL CHECK (state IN {check_list(BATCH_STATES_10, ', ')}),
            worker text, lease_until timestamptz, attempts integer NOT NULL, done_at timestamptz, counts text,
            PRIMARY KEY (run_id, lo))"""),
    ]),
    (11, "archive: old deliveries and snapshots no decision reads, moved out of the tables runs read (camp ledger archive)", [
        # the same columns as camp_deliveries and camp_recipients, without the CHECK (an archived row is never
        # written again), and when it was archived; camp_archived: the occurrences archived, which never run again
        (None, """CREATE TABLE camp_deliveries_archive (
            idempotency_key text PRIMARY KEY, campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL,
            user_id text NOT NULL, arm text, channel text, status text NOT NULL, reason text,
            cost decimal(18, 4) NOT NULL, currency text NOT NULL, coupon_id text, provider_message_id text,
            plan_hash text NOT NULL, run_id text NOT NULL, exclusive_group text,
            due_at timestamptz NOT NULL, not_before timestamptz, decided_at timestamptz NOT NULL,
            sent_at timestamptz, attempts integer NOT NULL, error text, archived_at timestamptz NOT NULL)"""),
        (None, """CREATE TABLE camp_recipients_archive (
            campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, seq bigint NOT NULL,
            user_id text NOT NULL, held_out boolean NOT NULL, data text NOT NULL, archived_at timestamptz NOT NULL)"""),
        (None, """CREATE TABLE camp_archived (
            campaign text NOT NULL, step text NOT NULL, occurrence text NOT NULL, archived_at timestamptz NOT NULL,
            as_of timestamptz NOT NULL, horizon timestamptz NOT NULL, deliveries bigint NOT NULL, kept bigint NOT NULL,
            recipients bigint NOT NULL,
            PRIMARY KEY (campaign, step, occurrence))"""),
        # what reports read: every delivery, archived or not (a later migration that adds a column to
        # camp_deliveries re-creates this view)
        (None, f"""CREATE VIEW camp_deliveries_all AS SELECT {_DELIVERY_COLUMNS} FROM camp_deliveries UNION ALL
            SELECT {_DELIVERY_COLUMNS} FROM camp_deliveries_archive"""),
    ]),
]
