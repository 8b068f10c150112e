"""`camp demo respond`: after runs, the demo shop's next days of orders with a planted effect per campaign and
arm (runtime.demo_response), and its red packet shares (runtime.demo_shares), so `camp sync` and `camp report`
have something true to find."""

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


def effects_of(given: tuple[str, ...], campaigns: dict[str, list[str]]):
    """`CAMPAIGN=TREATED:HOLDOUT` and `CAMPAIGN:ARM=TREATED:HOLDOUT` options over the default for every campaign
    (`campaigns`: name -> the arms of its entry step): (per campaign, per (campaign, arm))."""
    from runtime.demo_response import Effect

    out = {c: Effect(DEFAULT_TREATED, DEFAULT_HOLDOUT) for c in campaigns}
    arms = {}
    for item in given:
        target, _, rates = item.partition("=")
        name, colon, arm = target.partition(":")
        treated, _, held = rates.partition(":")
        if name not in out or not held:
            known = ", ".join(sorted(out))
            raise click.BadParameter(f"--effect {item!r}: write CAMPAIGN=TREATED:HOLDOUT or "
                                     f"CAMPAIGN:ARM=TREATED:HOLDOUT (e.g. winback_high_value=8%:5%); campaigns: {known}")
        effect = Effect(rate(treated, "treated rate"), rate(held, "holdout rate"))
        if not colon:
            out[name] = effect
        elif arm in campaigns[name]:
            arms[(name, arm)] = effect
        else:
            raise click.BadParameter(f"--effect {item!r}: campaign {name} has no arm {arm!r} in its entry step; "
                                     f"its arms: {', '.join(campaigns[name])}")
    return out, arms


def run_respond(path: Path, days: int, seed: int, effect: tuple[str, ...], organic: str, redeem: str,
                share: str, click: str, data: str | None, ledger: str | None) -> int:
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    entry_arms = {n: c.steps[0].arm_names() if c.steps else [] for n, c in sorted(program.campaigns.items())}
    effects, arms = effects_of(effect, entry_arms)
    sharing = float(rate(share, "--share"))
    clicking = float(rate(click, "--click"))
    where = click_table(ws.config.clicks.clicks(program.schema), program.schema)
    shares = ws.config.red_packets.shares(program.schema)
    windows = {c.name: c.goal_window.value * _UNIT[c.goal_window.unit] for c in program.campaigns.values()
               if c.goal_window is not None}
    from camp.run import open_stores
    from runtime.demo_clicks import plant_clicks
    from runtime.demo_response import respond
    from runtime.demo_shares import plant_shares
    from runtime.warehouse import connect

    stores = open_stores("camp demo respond", ws, data, ledger, "run `camp demo init` first, or check [data] url")
    if stores is None:
        return 1
    data_url, _, lg = stores
    try:
        exposures, coupons, grants = lg.respond_exposures_frame(), lg.issued_coupons_frame(), lg.sent_grants_frame()
    finally:
        lg.close()
    gone = sorted(set(exposures["campaign"]) - set(program.campaigns)) if len(exposures) else []
    if gone:  # the ledger remembers campaigns the workspace no longer has: nothing to plant for them
        exposures, coupons, grants = (f.loc[~f["campaign"].isin(gone)] if len(f) else f
                                      for f in (exposures, coupons, grants))
        print(f"camp demo respond: left out campaigns in the ledger but not in the workspace: {', '.join(gone)}")
    wh = connect(data_url)
    try:
        users = wh.frame("SELECT user_id FROM users")["user_id"]
        done = respond(wh, exposures, coupons, users, days, seed, effects, windows, rate(organic, "--organic"),
                       rate(redeem, "--redeem"), arms)
        shared = plant_shares(wh, grants, shares, days, seed, sharing) if shares is not None else None
        clicked = plant_clicks(wh, exposures, where, windows, days, seed, clicking) if where is not None else None
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
        for (c, arm), (at, atc, ar, arc) in sorted(done.by_arm.items()):
            if c == name and arm:
                a = arms.get((c, arm), e)
                print(f"    arm {arm}: sent {at:,}, {atc:,} ordered (planted {a.treated:.0%}); not sent {ar:,}, "
                      f"{arc:,} ordered (planted {a.holdout:.0%})")
    if shared is None and len(grants):
        print("  no shares written: camp.toml [red_packets] names no share_field")
    elif shared is not None and len(grants):
        print(f"  {shared:,} red packet shares of {len(grants):,} sent packets (planted {sharing:.0%} share, "
              "then 0 to 4 more times)")
    sent = sum(1 for s in exposures["sent"] if s == 1) if len(exposures) else 0
    if clicked is None and sent:
        print("  no clicks written: camp.toml [clicks] names no campaign_field")
    elif clicked is not None and sent:
        print(f"  {clicked:,} clicks of {sent:,} users sent a message (planted {clicking:.0%}, in the goal window)")
    print("  next: `camp sync` learns the redemptions and pays the shares")
    return 0


def click_table(clicks, schema):
    """Where the demo writes clicks: the schema's click events of camp.toml [clicks] (None: not configured)."""
    from runtime.demo_clicks import ClickTable

    if clicks is None:
        return None
    ev = schema.events[clicks.event]
    ident = ev.fields.get("click_id")
    return ClickTable(table=ev.table, user_column=ev.user_column, time_column=ev.time_column,
                      campaign_column=ev.fields[clicks.campaign_field].column,
                      id_column=ident.column if ident is not None and ident.type.kind == "text" else None)


def main_respond(*args) -> None:
    sys.exit(run_respond(*args))
