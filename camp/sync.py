"""`camp sync`: the workspace's [coupons] declaration -> the shop's redemptions and expiries recorded in the
ledger (runtime.coupon_sync), and its [red_packets] declaration -> the shop's shares paid (runtime.share_sync);
their counts printed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from camp.audience import checked, parse_as_of


def run_sync(path: Path, as_of: str | None, data: str | None, ledger: str | None, full: bool = False) -> int:
    """Exit status: 0 synced (or nothing declared to sync), 1 errors in the workspace or a database that
    cannot be opened."""
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    source = ws.config.coupons.redemptions(program.schema)
    shares = ws.config.red_packets.shares(program.schema)
    if source is None and shares is None:
        print("camp sync: camp.toml declares no [coupons] coupon_field: nothing to sync (name the orders' field "
              "that carries the coupon id camp issued, e.g. coupon_field = \"coupon_id\"; and for red packet "
              "shares, [red_packets] share_field)")
        return 0
    from camp.resources import packet_budgets
    from camp.run import open_stores
    from runtime.coupon_sync import sync_coupons
    from runtime.share_sync import sync_shares
    from runtime.shares import TOO_LATE

    when = parse_as_of(as_of, program.timezone)
    stores = open_stores("camp sync", ws, data, ledger, "check [data] url in camp.toml, --data or $CAMP_DATA_URL")
    if stores is None:
        return 1
    data_url, _, lg = stores
    try:
        result = sync_coupons(lg, data_url, source, when) if source is not None else None
        paid = sync_shares(lg, data_url, shares, when, packet_budgets(program), full) if shares is not None else None
    finally:
        lg.close()
    if source is not None and result is not None:
        print(f"camp sync: coupons as of {when.isoformat()} ({ws.config.coupons.redeemed_on}.{source.coupon_column}, "
              f"late data {ws.config.coupons.late_data})")
        for label, n in (("redeemed", result.redeemed), ("out of scope", result.out_of_scope),
                         ("outside validity", result.outside_validity), ("below min spend", result.below_min_spend),
                         ("expired", result.expired), ("already known", result.already_known)):
            print(f"  {label}: {n}")
    if paid is not None:
        ok = [p for p in paid if p.state == "paid"]
        late = sum(1 for p in paid if p.reason == TOO_LATE)
        rp = ws.config.red_packets
        print(f"camp sync: red packet shares as of {when.isoformat()} ({rp.shared_on}, late data {rp.late_data}"
              f"{', full history' if full else ''})")
        print(f"  new shares: {len(paid)}")
        print(f"  paid: {len(ok)} ({sum((p.amount for p in ok), Decimal(0))} {program.currency})")
        print(f"  refused: {len(paid) - len(ok)}")
        if full:
            print(f"  too late (made before the last sync's shares less {rp.late_data}; refused, not paid): {late}")
    return 0
