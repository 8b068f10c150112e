"""`camp ledger archive`: the workspace's campaigns at an as-of -> the retention rule (runtime.retention) -> old
deliveries and snapshots moved out of the tables runs read (runtime.ledger.archive). Never imports Prefect.

Prints what it moved per campaign step and occurrence (or, `--dry-run`, what it would), as a table or JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from camp.audience import checked, parse_as_of


def run_archive(path: Path, as_of: str | None, ledger: str | None, dry_run: bool, as_json: bool) -> int:
    """Exit status: 0 archived (or nothing to archive, or no ledger yet), 1 errors in the workspace or a ledger
    that cannot be opened."""
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    from camp.read_ledger import existing_ledger
    from compiler.campaign_plan import campaign_plan
    from runtime.retention import archive_rule
    from runtime.warehouse import run_urls

    when = parse_as_of(as_of, program.timezone)
    zone = ZoneInfo(program.timezone)
    name = ws.config.workspace.name
    rule = archive_rule([campaign_plan(program, c, "duckdb", ws.template_dir, name)
                         for c in program.campaigns.values()], when)
    lg = existing_ledger("camp ledger archive", run_urls(ws, None, ledger)[1], "{}" if as_json else None)
    if isinstance(lg, int):
        return lg
    try:
        done = lg.archive(rule, dry_run)
    finally:
        lg.close()
    if as_json:
        print(json.dumps({"as_of": when.isoformat(), "horizon": rule.horizon.astimezone(zone).isoformat(), "dry_run": dry_run,
                          "kept_forever": [{"channel": ch, "campaign": c} for ch, c in rule.forever],
                          "occurrences": done.occurrences, "moved": done.moved, "kept": done.kept,
                          "recipients": done.recipients,
                          "steps": [{"campaign": c, "step": s, "occurrence": o, "moved": m, "kept": k, "recipients": r}
                                    for c, s, o, m, k, r in done.steps]}, ensure_ascii=False, indent=1))
        return 0
    verb = "would move" if dry_run else "moved"
    print(f"camp ledger archive: as of {when.isoformat()}, no cap or exclusive hold reads deliveries due before "
          f"{rule.horizon.astimezone(zone).isoformat()}")
    for channel, campaign in rule.forever:
        print(f"  kept whatever their age: deliveries counted by a cap without a window ({channel or 'any channel'}, "
              f"{campaign or 'any campaign'})")
    if not done.steps:
        print("camp ledger archive: nothing to archive")
        return 0
    from camp.tables import new_table, print_table

    table = new_table(["campaign", "step", "occurrence", "deliveries " + verb.split()[-1], "kept", "snapshot rows"],
                   right={3, 4, 5})
    for c, s, o, m, k, r in done.steps:
        table.add_row(c, s, o, f"{m:,}", f"{k:,}", f"{r:,}")
    print_table(table)
    print(f"camp ledger archive: {verb} {done.moved:,} deliveries and {done.recipients:,} snapshot rows of "
          f"{done.occurrences:,} occurrences to camp_deliveries_archive and camp_recipients_archive; kept "
          f"{done.kept:,} that a cap without a window, an open coupon, pending points or a red packet still read"
          + ("" if not dry_run else " (dry run: nothing was moved)"), file=sys.stdout)
    return 0
