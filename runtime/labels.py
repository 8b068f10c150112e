"""Materialised labels: the warehouse's segments and classifications as of a time -> their history in the
ledger (`materialize`, `backfill`, `camp materialize`, the `camp-materialize` flow); the ledger's history ->
the warehouse session's TEMP table `camp_label_history` before an audience query that reads it
(`load_history`: snapshot, `camp audience`, and a materialisation whose labels read history themselves).

Like `camp_redeemed` (runtime/ledger_facts.py), the history lives in the ledger, which camp owns, and reaches the
warehouse (which may be read-only) only as a TEMP table of the session that runs the query, holding just the
rows of the names the query reads that overlap the times it reads.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from compiler.clock import fire_instant
from compiler.program import Program
from compiler.sql import HISTORY, AudienceSQL
from runtime.ledger import Ledger
from runtime.ledger.labels import HISTORY_COLS, Recorded
from runtime.warehouse import Warehouse, connect


def load_history(wh: Warehouse, lg: Ledger | None, since: dict[str, datetime], as_of: datetime) -> list[str]:
    """Fill `camp_label_history` in this warehouse session when the query reads history (`since`: name ->
    the earliest instant it reads, AudienceSQL.history_since()); returns warnings for names whose history does
    not reach back that far (the conditions are false for those times: no history, no label)."""
    if not since:
        return []
    wh.backend.fresh_temp_table(wh.conn, HISTORY, "name text, user_id text, label text, valid_from timestamptz, "
                                                  "valid_to timestamptz")
    reach = lg.history_reach(sorted(since)) if lg is not None else {}
    if lg is not None:
        frame = lg.history_frame(since, as_of)
        if len(frame):
            wh.bulk_insert(HISTORY, HISTORY_COLS, frame)
    warnings = []
    for name, t in since.items():
        first = reach.get(name)
        if first is None:
            warnings.append(f"{name} has never been materialised: its history conditions hold for nobody "
                            f"(run `camp materialize`, with `--backfill` to reach back to {t.isoformat()})")
        elif first > t:
            warnings.append(f"the history of {name} starts at {first.isoformat()}, after {t.isoformat()} which a "
                            f"condition reads: nobody had a label then (backfill further: `camp materialize "
                            f"--backfill`)")
    return warnings


def materialize(program: Program, data_url: str, lg: Ledger, names: list[str], as_of: datetime) -> list[Recorded]:
    """The labels of `names` as of `as_of` (the audience SQL at that time) -> the ledger's history, each name in
    one transaction; a name already materialised at or after `as_of` is left alone (idempotent)."""
    latest = {n: lg.latest_materialization(n) for n in names}
    todo = [n for n in names if latest[n] is None or latest[n] < as_of]  # type: ignore[operator]
    out = [Recorded(n, as_of, "done" if latest[n] == as_of else "later") for n in names if n not in todo]
    if not todo:
        return out
    wh = connect(data_url, read_only=True)
    try:
        compiler = AudienceSQL(program, as_of, wh.dialect)
        query = compiler.sql(compiler.labels(todo), pretty=False)
        load_history(wh, lg, compiler.history_since(), as_of)  # labels that read history themselves
        frame = wh.frame(query)
    finally:
        wh.close()
    for name in todo:
        labels = frame[["user_id", f"label_{name}"]].rename(columns={f"label_{name}": "label"})
        labels = labels[labels["label"].notna()]
        out.append(lg.record_labels(name, as_of, labels))
    return sorted(out, key=lambda r: names.index(r.name))


def schedule_times(program: Program, name: str, until: datetime, days: int) -> list[datetime]:
    """The instants a backfill of `days` days ending at `until` materialises `name` at, in order: each local day
    of the workspace's zone from `until`'s day minus `days` to `until`'s day, at the declaration's time of day
    (as its daily schedule fires it: compiler.clock.fire_instant), up to `until`; then `until` itself."""
    zone = ZoneInfo(program.timezone)
    last: date = until.astimezone(zone).date()
    hh, mm = program.materialized[name].at.split(":")
    out = {until}
    for k in range(days, -1, -1):
        t = fire_instant(datetime.combine(last - timedelta(days=k), time(int(hh), int(mm))), zone)
        if t <= until:
            out.add(t)
    return sorted(out)


def backfill(program: Program, data_url: str, lg: Ledger, names: list[str], until: datetime,
             days: int) -> list[Recorded]:
    """Each past day in order (`schedule_times`, each name at its own time of day), then `until`; the times
    already materialised are left alone."""
    times = {n: set(schedule_times(program, n, until, days)) for n in names}
    out: list[Recorded] = []
    for t in sorted(set().union(*times.values())):
        out += materialize(program, data_url, lg, [n for n in names if t in times[n]], t)
    return out
