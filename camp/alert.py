"""`camp alert`: each alert of the workspace (or one) evaluated for its current occurrence: the count, the share of
all users, the threshold, and whether its team got the message (runtime.alert). Never imports Prefect."""

from __future__ import annotations

from pathlib import Path

from camp.audience import checked, parse_as_of, unknown_name


def run_alerts(path: Path, only: str | None, as_of: str | None, dry_run: bool, data: str | None,
               ledger: str | None) -> int:
    """Exit status: 0 evaluated (sent or not), 1 workspace errors, a database that cannot be opened or a message
    that failed (the next run of the occurrence tries again), 2 an unknown alert."""
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    if only is not None and only not in program.alerts:
        return unknown_name("camp alert", "alert", only, list(program.alerts))
    names = [only] if only is not None else list(program.alerts)
    if not names:
        print("camp alert: the workspace declares no alerts")
        return 0
    from camp.run import open_stores
    from camp.tables import new_table, print_table
    from runtime.alert import run_alert
    from runtime.step import channels_of
    from runtime.warehouse import connect

    when = parse_as_of(as_of, program.timezone)
    stores = open_stores("camp alert", ws, data, ledger, "check [data] url in camp.toml, --data or $CAMP_DATA_URL")
    if stores is None:
        return 1
    data_url, _, lg = stores
    wh = connect(data_url, read_only=True)
    failed = 0
    table = new_table(["alert", "occurrence", "users", "share", "threshold", "state"], right={2, 3})
    try:
        for name in names:
            a = program.alerts[name]
            out = run_alert(program, a, ws.config.teams[a.team], channels_of(ws), wh, lg, when, dry_run)
            failed += out.state == "failed"
            limit = f"{a.value:.2%}" if a.measure == "share" else f"{int(a.value):,}"
            share = "-" if out.share is None else f"{out.share:.2%}"
            at = "-" if out.occurrence is None else f"{out.occurrence:%Y-%m-%d %H:%M} UTC"
            state = out.state + (f": {out.error}" if out.error else "") + (f" → {a.team}" if out.state == "sent" else "")
            table.add_row(name, at, f"{out.matched:,}", share, f"{a.measure} {a.op} {limit}", state)
    finally:
        wh.close()
        lg.close()
    print_table(table)
    return 1 if failed else 0
