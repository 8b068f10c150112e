"""`camp compile` and `camp audience`: the audience compiler from the command line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from dsl.diagnostics import Diagnostic, render_text

if TYPE_CHECKING:
    from runtime.ledger import Ledger


def parse_as_of(text: str | None, tz: str, option: str = "--as-of") -> datetime:
    """An ISO time (the workspace zone when it names none); None: now. A usage error names `option`."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-12-01T10:00 or 2026-12-01 10:00+08:00",
                                 param_hint=option) from None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def unknown_name(cmd: str, kind: str, name: str, known: list[str]) -> int:
    """Say that the workspace has no `kind` called `name`, with a did-you-mean or the list; the usage status 2."""
    from compiler.report import did_you_mean

    print(f"{cmd}: no {kind} `{name}` in the workspace", file=sys.stderr)
    print(f"  hint: {did_you_mean(name, known) or kind + 's: ' + (', '.join(known) or 'none')}", file=sys.stderr)
    return 2


def checked(file: Path):
    """The checked program of FILE's workspace, and the names FILE declares; None after printing errors."""
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    ws = load_workspace(file)
    if isinstance(ws, Diagnostic):  # no camp.toml: a usage error, as for `camp check`
        print(render_text([ws], {}), file=sys.stderr)
        sys.exit(2)
    result = check_workspace(ws)
    if result.errors:
        print(render_text(result.errors, ws.sources), file=sys.stderr)
        print(f"camp: {len(result.errors)} errors; fix them first (camp check)", file=sys.stderr)
        return None
    here = file.resolve()
    campaigns = [c for c in result.program.campaigns.values() if Path(c.file).resolve() == here]
    segments = [s for s in result.program.segments.values() if Path(s.file).resolve() == here]
    return ws, result.program, campaigns, segments


def run_compile(file: Path, dialect: str, as_of: str | None, only: str | None) -> int:
    from compiler.program import Campaign
    from compiler.sql import AudienceSQL, CompileError

    loaded = checked(file)
    if loaded is None:
        return 1
    ws, program, campaigns, segments = loaded
    when = parse_as_of(as_of, program.timezone)
    targets = [("campaign", c) for c in campaigns] + [("segment", s) for s in segments]
    if only:
        targets = [t for t in targets if t[1].name == only]
    if not targets:
        print(f"camp compile: {file} declares no {'`' + only + '`' if only else 'campaign or segment'}",
              file=sys.stderr)
        return 1
    for i, (kind, target) in enumerate(targets):
        compiler = AudienceSQL(program, when, dialect, manual_tags=True)
        try:
            query = compiler.final(target) if isinstance(target, Campaign) else compiler.condition(target.expr)
        except CompileError as exc:
            print(f"camp compile: {kind} {target.name}: {exc}", file=sys.stderr)
            return 1
        if i:
            print()
        print(f"-- {kind} {target.name}, as of {when.isoformat()}, {dialect}")
        print(compiler.sql(query) + ";")
    return 0


def run_audience(file: Path, as_of: str | None, count_only: bool, sample: int, only: str | None,
                 data: str | None = None) -> int:
    from camp.literals import absent_literals, probes

    loaded = checked(file)
    if loaded is None:
        return 1
    ws, program, campaigns, _ = loaded
    if only:
        campaigns = [c for c in campaigns if c.name == only]
    if not campaigns:
        print(f"camp audience: {file} declares no campaign{' ' + only if only else ''}", file=sys.stderr)
        return 1
    # the warehouse `camp run` reads: --data, else $CAMP_DATA_URL, else camp.toml
    with Shop(ws, program, data, "camp audience") as shop:
        if shop.wh is None:
            return 1
        when = parse_as_of(as_of, program.timezone)
        for c in campaigns:
            at, today, said = _occurrence(c, when)
            rows = shop.audience(c, at, today)
            matched = len(rows)
            excluded = sum(1 for r in rows if r[1])
            held = sum(1 for r in rows if r[2] and not r[1])
            final = sorted(r[0] for r in rows if not r[1] and not r[2])
            print(f"campaign {c.name}" + (f" ({c.title})" if c.title else "") + f", as of {at.isoformat()}{said}")
            print(f"  {'matched':<10}{matched:>12,}")
            print(f"  {'excluded':<10}{excluded:>12,}")
            print(f"  {'holdout':<10}{held:>12,}  ({format((c.holdout * 100).normalize(), 'f')}% of the rest, by hash of campaign and user)")
            print(f"  {'final':<10}{len(final):>12,}")
            if not count_only and sample > 0:
                shown = ", ".join(str(u) for u in final[:sample])
                print(f"  sample: {shown}" + (" …" if len(final) > sample else ""))
            tagged = any(p.kind == "tag" for p in probes(program, c))
            lg = shop.ledger if tagged else None
            manual = lg.manual_tag_counts() if lg is not None else None
            for warning in absent_literals(program, c, shop.wh.rows, shop.wh.dialect, at, manual):
                print(f"camp audience: warning: {warning}", file=sys.stderr)
    return 0


class Shop:
    """The workspace's warehouse (checked against the schema) and, opened when a query reads it, its ledger:
    what `camp audience`, `camp tag --audience`, `camp tags` and `camp describe` query. `wh` is None after
    printing why the warehouse cannot be used (the command then exits 1)."""

    def __init__(self, ws, program, data: str | None, command: str, ledger_url: str | None = None,
                 create_ledger: bool = False):
        from runtime.warehouse import compare_schema, connect, run_urls

        self.ws, self.program, self.data, self.ledger_url = ws, program, data, ledger_url
        self.command, self.create_ledger = command, create_ledger
        self._ledger: Ledger | None = None  # None once opened: there is none
        self._opened = False
        url = run_urls(ws, data)[0]
        self.wh = None
        try:
            wh = connect(url)
        except Exception as exc:  # noqa: BLE001 - any driver's connection error
            print(f"{command}: cannot open the database {url}: {exc}".strip(), file=sys.stderr)
            print("  hint: create demo data with `camp demo init`, or set [data] url in camp.toml", file=sys.stderr)
            return
        problems = compare_schema(wh, program.schema)
        if problems:
            print(f"{command}: the database {url} does not match the schema:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            wh.close()
            return
        self.wh = wh

    @property
    def ledger(self) -> Ledger | None:
        """The workspace's ledger, or None when there is none yet (see _ledger); with create_ledger it is
        created and migrated when missing, and None after saying why it cannot be opened."""
        if not self._opened:
            self._opened = True
            if self.create_ledger:
                from camp.run import _ledger_or_say
                from runtime.warehouse import run_urls

                self._ledger = _ledger_or_say(self.command, run_urls(self.ws, self.data, self.ledger_url)[1])
            else:
                self._ledger = _ledger(self.ws, self.data, self.ledger_url) or None
        return self._ledger

    def compiler(self, at, today=None):
        from compiler.sql import AudienceSQL

        assert self.wh is not None
        return AudienceSQL(self.program, at, self.wh.dialect, today=today, manual_tags=True)

    def run(self, compiler, query, campaign: str, at) -> list[tuple]:
        """Rows of a query `compiler` compiled, after filling the ledger's facts it reads."""
        from runtime.ledger_facts import load_ledger_facts

        assert self.wh is not None
        codes, tags = compiler.redeemed_codes(), compiler.tag_names()
        if codes or tags:
            load_ledger_facts(self.wh, self.ledger, campaign, codes, tags, at)
        if compiler.history_since():
            from runtime.labels import load_history

            for warning in load_history(self.wh, self.ledger, compiler.history_since(), at):
                print(f"{self.command}: warning: {warning}", file=sys.stderr)
        return self.wh.rows(compiler.sql(query, pretty=False))

    def audience(self, c, at, today=None) -> list[tuple]:
        """(user_id, excluded, held_out) of every user the campaign's WHO matches at `at`."""
        compiler = self.compiler(at, today)
        return self.run(compiler, compiler.campaign(c), c.name, at)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.wh is not None:
            self.wh.close()
        if self._ledger is not None:
            self._ledger.close()


def _ledger(ws, data: str | None, ledger: str | None = None):
    """The workspace's ledger for `redeemed(CODE)` and manual tags, or False when there is none yet (a DuckDB file
    not created: nobody redeemed anything or was tagged by hand, and reading creates no ledger)."""
    from pathlib import Path

    from runtime.ledger import open_ledger
    from runtime.warehouse import run_urls

    url = run_urls(ws, data, ledger)[1]
    if url.startswith("duckdb:///") and not Path(url.removeprefix("duckdb://")).exists():
        return False
    return open_ledger(url)


def run_demo_init(users: int, seed: int, url: str | None, workspace: Path) -> int:
    from runtime.demo_data import make_shop
    from runtime.warehouse import workspace_url

    if url is None:
        from compiler.workspace import load_workspace

        ws = load_workspace(workspace)
        if isinstance(ws, Diagnostic):
            print(render_text([ws], {}), file=sys.stderr)
            return 2
        url = workspace_url(ws.config.data.url, ws.root)
    try:
        made = make_shop(url, users, seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    counts = ", ".join(f"{t} {n:,}" for t, n in made.counts.items())
    print(f"camp demo init: {counts} into {url} in {made.seconds:.1f} s (seed {seed})")
    return 0


def _occurrence(c, when):
    """(the as-of time, `today` of a local-time send, a note) as `camp run` at `when` decides the campaign's first
    step: the scheduled time `when` falls in (docs/runtime.md), so both commands count the same users."""
    from datetime import UTC

    from compiler.schedule import local_send_of, occurrence_of, schedule_plan

    if c.schedule is None or c.schedule.kind == "event":
        return when, None, ""
    sp = schedule_plan(c.schedule)
    at = occurrence_of(sp, when)
    local = local_send_of(sp, at)
    today = local.date() if local else None
    if at == when.astimezone(UTC).replace(second=0, microsecond=0):
        return when, today, ""
    shown = at.astimezone(when.tzinfo)
    return shown, today, f" (the occurrence {when.isoformat()} falls in, as `camp run` decides it)"
