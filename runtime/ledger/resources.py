"""Points and red packets in the ledger (migration 4): the credits a batch decided and their issue, a user's
balance, the red packet grants and one transaction recording share payouts, and a campaign's actual spend.

Points: one `camp_points` row per delivery that gives points, keyed by the delivery's idempotency key, written
in the decision's transaction; `pending` until its delivery is sent and its issuer took it (the outbox issues in
the transaction that sends), so a crash in between leaves it pending and a later run issues it with the same key;
`void` when its delivery is not sent after all.

Red packets: one `camp_red_packets` row per delivery that gives one (its payout rule and the forecast it
reserved), payable once that delivery is sent; one `camp_red_packet_shares` row per share event id, paid or
refused, never twice; `camp_sync_marks` (migration 5): how far `camp sync` read the shop's shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from runtime.ledger.connection import Connection
from runtime.ledger.status import CouponState, PointsState, ShareState, Status

Occurrence = tuple[str, str, str]
POINTS_COLS = ["idempotency_key", "campaign", "step", "occurrence", "user_id", "points", "cost", "currency", "issuer",
               "state", "created_at", "issued_at", "provider_id", "error"]
PACKET_COLS = ["idempotency_key", "campaign", "packet", "user_id", "value", "currency", "decay", "floor",
               "fixed_after", "reserved", "granted_at"]
SHARE_COLS = ["share_id", "grant_key", "campaign", "packet", "user_id", "nth", "amount", "currency", "state", "reason",
              "budget_extra", "shared_at", "recorded_at"]


@dataclass(frozen=True)
class PointsCredit:
    idempotency_key: str
    campaign: str
    step: str
    occurrence: str
    user_id: str
    points: int
    issuer: str


@dataclass(frozen=True)
class PacketGrant:
    idempotency_key: str
    campaign: str
    packet: str
    value: Decimal
    currency: str
    decay: Decimal | None
    floor: Decimal | None
    fixed_after: int | None
    reserved: Decimal


@dataclass(frozen=True)
class Spend:
    """A campaign's money: what its decisions reserved (the forecast, camp_spend) and what it actually cost:
    redeemed coupons' discounts, points issued (at their cost), red packet shares paid."""

    forecast: Decimal
    coupons: Decimal
    points: Decimal
    red_packets: Decimal

    @property
    def actual(self) -> Decimal:
        return self.coupons + self.points + self.red_packets


class ResourceLedger(Connection):
    # ------------------------------------------------------------ points
    def record_grants(self, points: list[tuple], packets: list[tuple]) -> None:
        """A batch's points credits (POINTS_COLS) and red packet grants (PACKET_COLS). Call it inside
        `decision()`, with the deliveries they belong to."""
        self.bulk_insert("camp_points", POINTS_COLS, points)
        self.bulk_insert("camp_red_packets", PACKET_COLS, packets)

    def unissued_points(self, campaign: str) -> list[PointsCredit]:
        """The campaign's credits still pending whose delivery was sent (any step or occurrence)."""
        return [PointsCredit(k, c, s, o, u, int(n), i) for k, c, s, o, u, n, i in self.rows(
            "SELECT p.idempotency_key, p.campaign, p.step, p.occurrence, p.user_id, p.points, p.issuer FROM camp_points "
            f"p JOIN camp_deliveries d ON d.idempotency_key = p.idempotency_key WHERE p.campaign = ? AND "
            f"p.state = '{PointsState.PENDING}' AND d.status = '{Status.SENT}' ORDER BY p.idempotency_key",
            (campaign,))]

    def void_unsent_points(self, campaign: str) -> int:
        """Pending credits whose delivery will never be sent (failed, or suppressed at a re-check) become void,
        as their reservation was given back; how many."""
        gone = f"('{Status.FAILED}', '{Status.SUPPRESSED}')"
        where = (f"campaign = ? AND state = '{PointsState.PENDING}' AND idempotency_key IN (SELECT idempotency_key "
                 f"FROM camp_deliveries WHERE campaign = ? AND status IN {gone})")
        n = int(self.one(f"SELECT count(*) FROM camp_points WHERE {where}", (campaign, campaign)))
        if n:
            self.execute(f"UPDATE camp_points SET state = '{PointsState.VOID}', error = 'its delivery was not sent' "
                         f"WHERE {where}", (campaign, campaign))
        return n

    def issue_in_outbox(self, campaign: str, issuer: str, at: datetime) -> int:
        """One statement: the campaign's pending credits of `issuer` (the outbox: camp_points is what the shop's
        points system reads) whose delivery was sent become issued; how many."""
        where = (f"campaign = ? AND issuer = ? AND state = '{PointsState.PENDING}' AND idempotency_key IN "
                 f"(SELECT idempotency_key FROM camp_deliveries WHERE campaign = ? AND status = '{Status.SENT}')")
        n = int(self.one(f"SELECT count(*) FROM camp_points WHERE {where}", (campaign, issuer, campaign)))
        if n:
            self.execute(f"UPDATE camp_points SET state = '{PointsState.ISSUED}', issued_at = ?, provider_id = "
                         f"'outbox:' || idempotency_key, error = NULL WHERE {where}", (at, campaign, issuer, campaign))
        return n

    def points_issued(self, key: str, at: datetime, provider_id: str) -> None:
        self.execute(f"UPDATE camp_points SET state = '{PointsState.ISSUED}', issued_at = ?, provider_id = ?, "
                     f"error = NULL WHERE idempotency_key = ? AND state = '{PointsState.PENDING}'",
                     (at, provider_id, key))

    def points_failed(self, key: str, error: str, void: bool) -> None:
        """A credit its issuer refused: void for good, or left pending (the issuer is down) for the next run."""
        state = PointsState.VOID if void else PointsState.PENDING
        self.execute(f"UPDATE camp_points SET state = '{state}', error = ? WHERE idempotency_key = ? AND "
                     f"state = '{PointsState.PENDING}'", (error[:2000], key))

    def points_balance(self, user: str) -> tuple[int, int]:
        """(issued, pending) points of the user, over every campaign."""
        rows = dict(self.rows("SELECT state, sum(points) FROM camp_points WHERE user_id = ? GROUP BY state", (user,)))
        return int(rows.get(PointsState.ISSUED) or 0), int(rows.get(PointsState.PENDING) or 0)

    # ------------------------------------------------------------ red packets
    def packet_grant(self, user: str, packet: str | None, at: datetime) -> PacketGrant | None:
        """The user's latest red packet granted at or before `at` (of that packet when named) whose delivery was
        sent."""
        named = " AND g.packet = ?" if packet else ""
        rows = self.rows(
            "SELECT g.idempotency_key, g.campaign, g.packet, g.value, g.currency, g.decay, g.floor, g.fixed_after, "
            "g.reserved FROM camp_red_packets g JOIN camp_deliveries d ON d.idempotency_key = g.idempotency_key "
            f"WHERE g.user_id = ? AND g.granted_at <= ? AND d.status = '{Status.SENT}'{named} "
            "ORDER BY g.granted_at DESC, g.idempotency_key DESC LIMIT 1", (user, at, packet) if packet else (user, at))
        if not rows:
            return None
        k, c, p, v, cur, d, f, n, r = rows[0]
        return PacketGrant(k, c, p, Decimal(v), cur, Decimal(d) if d is not None else None,
                           Decimal(f) if f is not None else None, int(n) if n is not None else None, Decimal(r))

    def first_grant_at(self) -> datetime | None:
        """When the earliest red packet was granted; None before any."""
        return self.one("SELECT min(granted_at) FROM camp_red_packets")

    def known_shares(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        return {s for (s,) in self.rows(f"SELECT share_id FROM camp_red_packet_shares WHERE "
                                        f"{self.in_list('share_id')}", (ids,))}

    def grant_shares(self, grant_key: str) -> tuple[int, Decimal]:
        """(how many shares the grant had, what they were paid)."""
        n, paid = self.rows(f"SELECT count(*), coalesce(sum(CASE WHEN state = '{ShareState.PAID}' THEN amount END), "
                            "0) FROM camp_red_packet_shares WHERE grant_key = ?", (grant_key,))[0]
        return int(n), Decimal(paid)

    def add_share(self, row: tuple) -> None:
        """One share's payout or refusal (SHARE_COLS)."""
        self.bulk_insert("camp_red_packet_shares", SHARE_COLS, [row])

    def shares_of(self, user: str) -> list[tuple]:
        """The user's shares, in the order they were made (SHARE_COLS)."""
        return self.rows(f"SELECT {', '.join(SHARE_COLS)} FROM camp_red_packet_shares WHERE user_id = ? "
                         "ORDER BY shared_at, share_id", (user,))

    # ------------------------------------------------------------ sync watermarks (migration 5)
    def watermark(self, source: str) -> datetime | None:
        """The latest as-of `source` was read up to by `camp sync`; None before its first sync."""
        return self.one("SELECT watermark FROM camp_sync_marks WHERE source = ?", (source,))

    def advance_watermark(self, source: str, at: datetime, now: datetime) -> None:
        """`source` was read up to `at`; a watermark never moves back (a sync with an earlier --as-of)."""
        self.execute("INSERT INTO camp_sync_marks VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET watermark = "
                     "greatest(camp_sync_marks.watermark, excluded.watermark), updated_at = excluded.updated_at",
                     (source, at, now))

    # ------------------------------------------------------------ budgets: forecast and actual
    def coupon_money(self, campaign: str) -> list[tuple[str, Decimal, Decimal]]:
        """(code, value of its coupons not void, discounts of those redeemed) per code of the campaign."""
        return [(code, Decimal(v), Decimal(d)) for code, v, d in self.rows(
            "SELECT code, coalesce(sum(value), 0), coalesce(sum(CASE WHEN state = "
            f"'{CouponState.REDEEMED}' THEN discount END), 0) FROM camp_coupons WHERE campaign = ? AND "
            f"state <> '{CouponState.VOID}' GROUP BY code ORDER BY code", (campaign,))]

    def coupon_discounts_by_day(self, campaign: str, zone: str) -> list[tuple[str, date, Decimal]]:
        """(code, local day in `zone`, discounts) of the campaign's redeemed coupons, per code and day: the day of
        the redeeming order (redeemed_order_at), else of when the redemption was learnt (redeemed_at)."""
        day = "CAST((coalesce(redeemed_order_at, redeemed_at, reserved_at) AT TIME ZONE ?) AS date)"
        return [(code, d, Decimal(x)) for code, d, x in self.rows(
            f"SELECT code, {day} AS local_day, coalesce(sum(discount), 0) FROM camp_coupons WHERE campaign = ? AND "
            f"state = '{CouponState.REDEEMED}' GROUP BY code, local_day ORDER BY code, local_day", (zone, campaign))]

    def actual_spend(self, campaign: str) -> Spend:
        """What the campaign reserved and what it actually cost so far (Spend)."""
        forecast = self.one("SELECT coalesce(sum(amount), 0) FROM camp_spend WHERE campaign = ?", (campaign,))
        coupons = self.one("SELECT coalesce(sum(discount), 0) FROM camp_coupons WHERE campaign = ? AND "
                           f"state = '{CouponState.REDEEMED}'", (campaign,))
        points = self.one("SELECT coalesce(sum(cost), 0) FROM camp_points WHERE campaign = ? AND "
                          f"state = '{PointsState.ISSUED}'", (campaign,))
        packets = self.one("SELECT coalesce(sum(amount), 0) FROM camp_red_packet_shares WHERE campaign = ? AND "
                           f"state = '{ShareState.PAID}'", (campaign,))
        return Spend(Decimal(forecast), Decimal(coupons), Decimal(points), Decimal(packets))
