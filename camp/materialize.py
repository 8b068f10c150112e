"""`camp materialize`: the workspace's `materialize` declarations -> the labels of their segments and
classifications as of a time (and, with --backfill, of each past day first) recorded as history in the ledger
(runtime/labels.py); what each materialisation changed printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from camp.audience import checked, parse_as_of

_DAYS = re.compile(r"([0-9]{1,5})d")


def parse_backfill(text: str | None) -> int:
    """`90d` -> 90; None -> 0. A usage error otherwise."""
    if text is None:
        return 0
    m = _DAYS.fullmatch(text.strip())
    if m is None or not 1 <= int(m.group(1)) <= 3660:
        raise click.BadParameter(f"{text!r} is not a number of days like 90d (1d to 3660d)", param_hint="--backfill")
    return int(m.group(1))


def run_materialize(path: Path, as_of: str | None, backfill_text: str | None, names: tuple[str, ...],
                    data: str | None, ledger: str | None) -> int:
    """Exit status: 0 materialised (or nothing declared, or nothing new), 1 errors in the workspace, a name
    not declared, an as-of time before the latest materialisation, or a database that cannot be opened."""
    days = parse_backfill(backfill_text)
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    declared = list(program.materialized)
    if not declared:
        print("camp materialize: no `materialize` declaration in the workspace: nothing to do (e.g. "
              "`materialize lifecycle, value_quadrant daily at 02:00` in a .camp file)")
        return 0
    unknown = [n for n in names if n not in program.materialized]
    if unknown:
        print(f"camp materialize: not materialised by any declaration: {', '.join(unknown)} (declared: "
              f"{', '.join(declared)})", file=sys.stderr)
        return 1
    chosen = list(names) or declared
    when = parse_as_of(as_of, program.timezone)
    from camp.run import open_stores
    from runtime.labels import backfill, materialize

    stores = open_stores("camp materialize", ws, data, ledger,
                         "check [data] url in camp.toml, --data or $CAMP_DATA_URL")
    if stores is None:
        return 1
    data_url, _, lg = stores
    try:
        done = (backfill(program, data_url, lg, chosen, when, days) if days
                else materialize(program, data_url, lg, chosen, when))
    finally:
        lg.close()
    recorded = [r for r in done if r.state == "recorded"]
    print(f"camp materialize: {', '.join(chosen)} as of {when.isoformat()}"
          + (f", backfilled {days} days ({len({r.as_of for r in recorded})} times materialised)" if days else ""))
    for name in chosen:
        mine = [r for r in recorded if r.name == name]
        if mine:
            last = mine[-1]
            print(f"  {name}: {last.users:,} users labelled; intervals opened {sum(r.opened for r in mine):,}, "
                  f"closed {sum(r.closed for r in mine):,}")
        else:
            print(f"  {name}: already materialised at or after this time: nothing changed")
    later = [r for r in done if r.state == "later"]
    if later and not days:
        print(f"camp materialize: history only grows forward: {', '.join(sorted({r.name for r in later}))} "
              "already materialised after this time", file=sys.stderr)
        return 1
    return 0
