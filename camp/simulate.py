"""`camp simulate PATH --from D --to D`: play a period of the workspace's campaigns against a scratch copy of the
ledger (runtime.simulate) and report sends, spend, contact pressure, collisions and suppressions as tables, a
stable JSON document (`version`) or one self-contained HTML page (camp/simulate_html.py). Never imports Prefect.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from camp.audience import checked

MAX_DAYS = 366


def period(start: str, end: str, tz: str) -> tuple[datetime, datetime]:
    """--from and --to -> [start, end): a date is that local day in the workspace's zone (--to's day included), an
    ISO time that instant (--to's excluded). A usage error (exit 2) for anything else, an empty or reversed
    period, or one longer than MAX_DAYS."""
    a, b = _when(start, tz, "--from", False), _when(end, tz, "--to", True)
    if b <= a:
        raise click.BadParameter(f"--to ({end}) is not after --from ({start}): the period would be empty",
                                 param_hint="--to")
    if b - a > timedelta(days=MAX_DAYS):
        raise click.BadParameter(f"the period is {(b - a).days} days; at most {MAX_DAYS} are simulated at once",
                                 param_hint="--to")
    return a, b


def _when(text: str, tz: str, option: str, end: bool) -> datetime:
    zone = ZoneInfo(tz)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=zone)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date like 2026-12-01 or an ISO time like 2026-12-01T10:00+08:00",
                                 param_hint=option) from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def run_simulate(path: Path, start: str, end: str, fmt: str, out: Path | None, data: str | None,
                 ledger: str | None) -> int:
    """Exit status: 0 simulated, 1 errors in the workspace or data/ledger that cannot be read, 2 usage."""
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    a, b = period(start, end, program.timezone)
    from runtime.engine import Archived
    from runtime.sim_ledger import ScratchError
    from runtime.sim_report import simulation_report
    from runtime.simulate import simulate
    from runtime.warehouse import connect, run_urls

    data_url, ledger_url = run_urls(ws, data, ledger)
    try:
        connect(data_url, read_only=True).close()
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        print(f"camp simulate: cannot open the data {data_url}: {exc}", file=sys.stderr)
        print("  hint: create demo data with `camp demo init`, or set [data] url in camp.toml", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="camp-simulate-"))
    try:
        try:
            sim = simulate(ws, program, a, b, data_url, ledger_url, folder, progress=_progress())
        except ScratchError as exc:
            print(f"camp simulate: {exc}", file=sys.stderr)
            return 1
        except Archived as exc:  # the period starts where the ledger's archive no longer has what caps read
            print(f"camp simulate: {exc}", file=sys.stderr)
            print("  hint: simulate a period that starts later", file=sys.stderr)
            return 1
        try:
            doc = simulation_report(sim, program)
        finally:
            sim.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if fmt == "json":
        text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    elif fmt == "html":
        from camp.simulate_html import html_of

        text = html_of(doc)
    else:
        text = None
    if text is not None:
        if out is not None:
            out.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    if out is not None:
        import io

        from rich.console import Console

        buf = io.StringIO()
        print_text(doc, Console(file=buf, width=240, highlight=False, soft_wrap=False))
        out.write_text(buf.getvalue(), encoding="utf-8")
        return 0
    print_text(doc, None)
    return 0


def _progress():
    """A line on stderr per simulated day, on a terminal only."""
    if not sys.stderr.isatty():
        return None
    seen: set[str] = set()

    def report(at: datetime, campaign: str) -> None:
        day = at.date().isoformat()
        if day not in seen:
            seen.add(day)
            print(f"camp simulate: {day} …", file=sys.stderr)
    return report


def print_text(doc: dict, console) -> None:
    """The report as tables (rich: wide Chinese text stays aligned)."""
    import shutil as sh

    from rich.console import Console
    from rich.table import Table

    if console is None:
        width = sh.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else 240
        console = Console(width=width, highlight=False, soft_wrap=False)

    def table(title: str, columns: list[str], right: set[int]) -> Table:
        t = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, show_edge=False,
                  header_style="bold", padding=(0, 2, 0, 0))
        for i, c in enumerate(columns):
            t.add_column(c, justify="right" if i in right else "left", no_wrap=True)
        return t

    runs = ", ".join(f"{n} {k}" for k, n in doc["runs"].items()) or "none"
    console.print(f"camp simulate: {doc['from']} to {doc['to']} ({doc['timezone']}), scratch ledger; nothing sent")
    console.print(f"  runs played: {runs}")
    for c, n in doc["events"].items():
        console.print(f"  {c}: {n:,} events replayed from the warehouse"
                      + ("" if n else " (none in the period: it sends nothing)"))
    for c, n in doc["after_end"].items():
        console.print(f"  {c}: {n:,} runs fall due after the period (not played)")
    for p in doc["not_played"]:
        console.print(f"  {p['campaign']}: not played: {p['why']}")
    for p in doc["problems"]:
        console.print(f"  problem: {p}")
    campaigns = sorted({r["campaign"] for r in doc["daily"]})
    sent = {(r["day"], r["campaign"]): r["sent"] for r in doc["daily"]}
    t = table("\nsent per day and campaign", ["day", *campaigns, "total"], set(range(1, len(campaigns) + 2)))
    for d in doc["days"]:
        row = [sent.get((d, c), 0) for c in campaigns]
        t.add_row(d, *(f"{v:,}" for v in row), f"{sum(row):,}")
    console.print(t)
    channels = sorted({r["channel"] for r in doc["sends"]})
    by_channel: dict = {}
    for r in doc["sends"]:
        by_channel[(r["day"], r["channel"])] = by_channel.get((r["day"], r["channel"]), 0) + r["sent"]
    t = table("\nsent per day and channel", ["day", *channels], set(range(1, len(channels) + 1)))
    for d in doc["days"]:
        t.add_row(d, *(f"{by_channel.get((d, ch), 0):,}" for ch in channels))
    console.print(t)
    t = table(f"\nbudgets ({doc['currency']})", ["campaign", "total", "per day", "spent before", "spent", "left",
                                                "total runs out", "daily budget hit on", "left out"], {1, 2, 3, 4, 5, 8})
    for b in doc["budgets"]:
        hit = b["daily_runs_out"]
        t.add_row(b["campaign"], b["total"] or "-", b["daily"] or "-", b["spent_before"], b["spent"], b["left"] or "-",
                  b["total_runs_out"] or "-", f"{len(hit)} days, first {hit[0]}" if hit else "-", f"{b['left_out']:,}")
    console.print(t)
    p = doc["pressure"]
    w = p["per_7_days"]
    console.print(f"\n[bold]contact pressure[/bold]: {p['users_messaged']:,} users messaged; most messages per user in "
                  f"any 7 days: p95 {w['p95']}, max {w['max']}; distribution "
                  + ", ".join(f"{n}: {k:,}" for n, k in w["distribution"].items()))
    t = table("caps", ["scope", "campaign", "unit", "per", "limit", "max seen", "within"], {4, 5})
    for c in p["caps"]:
        limit = f"{c['limit']} (tiers by {c['tiered_by']})" if c["tiered_by"] else str(c["limit"])
        t.add_row(c["scope"], c["campaign"] or "-", c["unit"], c["per"], limit, str(c["max_seen"]),
                  "yes" if c["within"] else "NO")
    console.print(t)
    col = doc["collisions"]
    t = table("\ncollisions: users several campaigns wanted the same day", ["campaigns", "won by", "user-days", "users"],
              {2, 3})
    for g in col["groups"][:15]:
        t.add_row(", ".join(g["campaigns"]), ", ".join(g["winners"]) or "none", f"{g['user_days']:,}",
                  f"{g['users']:,}")
    console.print(t)
    t = table("\nsuppressions by reason", ["campaign", "status", "reason", "users"], {3})
    for s in doc["suppressions"][:40]:
        t.add_row(s["campaign"], s["status"], s["reason"][:90], f"{s['users']:,}")
    console.print(t)
