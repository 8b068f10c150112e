"""`camp demo respond`: after runs, the demo shop's next days of orders with a planted effect per campaign
(runtime.demo_response), so `camp sync` and `camp report` have something true to find."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import click

from camp.audience import checked

DEFAULT_TREATED, DEFAULT_HOLDOUT = Decimal("0.08"), Decimal("0.05")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(days=7),
         "mo": timedelta(days=28)}  # a month at its shortest: the converter's order stays inside the window


def rate(text: str, what: str) -> Decimal:
    """'8%' as a fraction (camp.toml's percentages: 0% to 100%, compiler.config.percent_fraction)."""
    from compiler.config import percent_fraction

    value = percent_fraction(text)
    if value is None:
        raise click.BadParameter(f"{what} {text!r} is not a percentage from 0% to 100%: write e.g. 8%")
    return value


def effects_of(given: tuple[str, ...], campaigns: list[str]):
    """`CAMPAIGN=TREATED:HOLDOUT` options over the default for every campaign."""
    from runtime.demo_response import Effect

    out = {c: Effect(DEFAULT_TREATED, DEFAULT_HOLDOUT) for c in campaigns}
    for item in given:
        name, _, rates = item.partition("=")
        treated, _, held = rates.partition(":")
        if name not in out or not held:
            known = ", ".join(sorted(out))
            raise click.BadParameter(f"--effect {item!r}: write CAMPAIGN=TREATED:HOLDOUT (e.g. "
                                     f"winback_high_value=8%:5%); campaigns: {known}")
        out[name] = Effect(rate(treated, "treated rate"), rate(held, "holdout rate"))
    return out


def run_respond(path: Path, days: int, seed: int, effect: tuple[str, ...], organic: str, redeem: str,
                data: str | None, ledger: str | None) -> int:
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    effects = effects_of(effect, sorted(program.campaigns))
    windows = {c.name: c.goal_window.value * _UNIT[c.goal_window.unit] for c in program.campaigns.values()
               if c.goal_window is not None}
    from camp.run import open_stores
    from runtime.demo_response import respond
    from runtime.warehouse import connect

    stores = open_stores("camp demo respond", ws, data, ledger, "run `camp demo init` first, or check [data] url")
    if stores is None:
        return 1
    data_url, _, lg = stores
    try:
        exposures, coupons = lg.respond_exposures_frame(), lg.issued_coupons_frame()
    finally:
        lg.close()
    wh = connect(data_url)
    try:
        users = wh.frame("SELECT user_id FROM users")["user_id"]
        done = respond(wh, exposures, coupons, users, days, seed, effects, windows, rate(organic, "--organic"),
                       rate(redeem, "--redeem"))
    finally:
        wh.close()
    span = f" from {done.start:%Y-%m-%d %H:%M} to {done.end:%Y-%m-%d %H:%M} UTC" if done.start and done.end else ""
    print(f"camp demo respond: {done.orders:,} orders{span} (seed {seed}): {done.redeemed:,} carry an issued "
          f"coupon, {done.organic:,} organic")
    if not done.converted:
        print("  no campaign has decided on anyone yet: run one first (`camp run`)")
    for name, (treated, tc, rest, rc) in sorted(done.converted.items()):
        e = effects[name]
        print(f"  {name}: sent {treated:,}, {tc:,} ordered (planted {e.treated:.0%}); not sent {rest:,}, "
              f"{rc:,} ordered (planted {e.holdout:.0%})")
    print("  next: `camp sync` learns the redemptions")
    return 0


def main_respond(*args) -> None:
    sys.exit(run_respond(*args))
