"""The `camp` command. Imports of the pipeline happen inside commands, so `--help` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runtime.ledger.status import Status

FORMATS = ("text", "json", "github")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="camp", prog_name="camp")  # the one version: pyproject.toml
def cli() -> None:
    """camp: CRM campaigns as code.

    Write campaigns in 5W2H (why, who, what, when, where, how, how much), check them
    in CI, compile audiences to SQL and run them with Prefect.

    \b
    Exit status of every command:
      0  done, nothing wrong
      1  problems found (diagnostics, a run that failed, `fmt --check` changes)
      2  usage error (bad option or argument, missing file, no camp.toml)
      3  internal error: a bug in camp, one line on stderr; please report it
         (CAMP_DEBUG=1 prints the traceback)
    """


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for people, json for tools, github for GitHub Actions annotations.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--fix", is_flag=True, help="First apply the fixes that are certain (a misspelt name with exactly one "
                                          "did-you-mean candidate), then check.")
def check(paths: tuple[Path, ...], fmt: str, strict: bool, fix: bool) -> None:
    """Type-check campaigns: every problem with file, line, column, code and hint.

    Exit status: 0 clean, 1 errors (or warnings with --strict), 2 usage (bad option, no
    camp.toml), 3 internal error (a bug in camp; CAMP_DEBUG=1 shows the traceback).
    """
    from camp.commands import run_check

    raise LeanExit(run_check(paths or (Path("."),), fmt, strict, fix))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the AST as JSON (the default).")
@click.option("--spans/--no-spans", default=True, help="Include source spans.")
def parse(file: Path, as_json: bool, spans: bool) -> None:
    """Parse one .camp file and print its AST as JSON."""
    from camp.commands import run_parse

    sys.exit(run_parse(file, spans))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--check", "check_only", is_flag=True, help="Do not write; exit 1 if any file would change.")
@click.option("--diff", is_flag=True, help="Do not write; print the unified diff of what would change (exit 1 then).")
def fmt(paths: tuple[Path, ...], check_only: bool, diff: bool) -> None:
    """Rewrite .camp files in the canonical layout (comments are kept)."""
    from camp.commands import run_fmt

    sys.exit(run_fmt(paths or (Path("."),), check_only, diff))


@cli.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin/stdout (the default and only transport; editors pass it).")
def lsp(stdio: bool) -> None:
    """Start the language server on stdio: diagnostics as you type, hover, completion, go to definition and
    formatting for .camp files (docs/editors.md)."""
    from camp.lsp.server import serve

    serve()


@cli.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a diagnostic code (or list them all)."""
    from camp.commands import run_explain

    sys.exit(run_explain(code))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dialect", type=click.Choice(["duckdb", "postgres", "snowflake", "bigquery", "spark", "trino"]),
              default="duckdb", show_default=True)
@click.option("--as-of", "as_of", help="The evaluation time, ISO 8601 (default: now). Without a zone: the workspace's.")
@click.option("--campaign", "only", help="Only this campaign (or segment) of the file.")
def compile(file: Path, dialect: str, as_of: str | None, only: str | None) -> None:  # noqa: A001
    """Print the SQL of each campaign's audience (or each segment) in FILE."""
    from camp.audience import run_compile

    sys.exit(run_compile(file, dialect, as_of, only))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-of", "as_of", help="The evaluation time, ISO 8601 (default: now).")
@click.option("--count", "count_only", is_flag=True, help="Only the counts per section.")
@click.option("--sample", default=10, show_default=True, help="How many users of the final audience to show.")
@click.option("--campaign", "only", help="Only this campaign of the file.")
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
def audience(file: Path, as_of: str | None, count_only: bool, sample: int, only: str | None,
             data: str | None) -> None:
    """Run each campaign's audience in FILE on the workspace database and count it, at the occurrence the as-of
    time falls in (as `camp run` decides it): matched, excluded, holdout, final."""
    from camp.audience import run_audience

    sys.exit(run_audience(file, as_of, count_only, sample, only, data))


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", "as_of", help="The clock, ISO 8601 (default: now); the occurrence is the scheduled time "
                                       "it falls in.")
@click.option("--step", help="The step to run (default: the first). A follow-up step runs for every "
                             "occurrence of the journey with users due at the as-of time.")
@click.option("--occurrence", help="With a follow-up --step: only this occurrence of the journey.")
@click.option("--dry-run", is_flag=True, help="Do everything but send and write deliveries.")
@click.option("--campaign", "only", help="Only this campaign.")
@click.option("--batch-size", default=10_000, show_default=True, help="Recipients per Prefect task.")
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on a terminal.")
@click.option("--all", "run_all", is_flag=True, help="With a folder: run every campaign, due or not.")
@click.option("--release", "release_only", is_flag=True,
              help="Only send deferred deliveries (quiet hours, `tz user`) due at the as-of time; decide nothing.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes that decide and send each occurrence's batches, claiming them from a PostgreSQL ledger "
                   "(default: camp.toml's [runtime] workers, else 1: this process).")
def run(path: Path, as_of: str | None, step: str | None, occurrence: str | None, dry_run: bool, only: str | None,
        batch_size: int, data: str | None, ledger: str | None, progress: bool, run_all: bool,
        release_only: bool, workers: int | None) -> None:
    """Run one occurrence of the campaigns in PATH through Prefect. A file: its campaigns. A folder: the
    campaigns due at the as-of time (fired earlier that local day, within their dates, not yet run), and a
    release of the deferred deliveries now due of the others; the rest are listed with why. --all runs every
    campaign; --release only releases."""
    from camp.run import run_run

    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    if occurrence and not step:
        raise click.BadParameter("picks the journey of a follow-up step: give --step too", param_hint="--occurrence")
    if release_only and (step or occurrence or run_all or dry_run):
        raise click.BadParameter("releases what was decided: no --step, --occurrence, --all or --dry-run",
                                 param_hint="--release")
    sys.exit(run_run(path, as_of, step, dry_run, only, batch_size, data, ledger, progress, occurrence, run_all,
                     release_only, workers))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", "as_of", help="Read orders up to this time, ISO 8601 (default: now). Without a zone: the "
                                       "workspace's.")
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--full", is_flag=True, help="Red packet shares: read every share since the first grant, not only "
                                           "those since the last sync less [red_packets] late_data; unknown ones "
                                           "older than that are recorded refused (too late) and counted.")
def sync(path: Path, as_of: str | None, data: str | None, ledger: str | None, full: bool) -> None:
    """Learn from the shop's orders which issued coupons were redeemed (scope, validity and minimum spend
    noted) and which expired unused, and pay the shop's red packet shares; print the counts. Needs [coupons]
    coupon_field (or [red_packets] share_field) in camp.toml.

    Exit status: 0 synced (or nothing declared), 1 errors in the workspace or a database camp cannot open,
    2 usage (no camp.toml), 3 internal error.
    """
    from camp.sync import run_sync

    sys.exit(run_sync(path, as_of, data, ledger, full))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", "as_of", help="Materialise the labels as of this ISO time (default: now; the workspace "
                                       "zone when it names none).")
@click.option("--backfill", "backfill_days", metavar="Nd",
              help="First materialise each of the past N days in order (at the declaration's time of day, in the "
                   "workspace zone), e.g. 90d.")
@click.option("--name", "names", multiple=True, help="Only this materialised segment or classification (repeatable).")
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def materialize(path: Path, as_of: str | None, backfill_days: str | None, names: tuple[str, ...], data: str | None,
                ledger: str | None) -> None:
    """Snapshot the segments and classifications of the workspace's `materialize` declarations into the
    ledger's label history as of a time: intervals that changed are closed, new ones opened; running the same
    time again changes nothing.

    Exit status: 0 done (or nothing to do), 1 errors in the workspace, an as-of time before the latest
    materialisation, or a database camp cannot open, 2 usage, 3 internal error.
    """
    from camp.materialize import run_materialize

    sys.exit(run_materialize(path, as_of, backfill_days, names, data, ledger))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(path: Path, ledger: str | None, limit: int, as_json: bool) -> None:
    """Past runs recorded in the ledger, newest first."""
    from camp.run import run_runs

    sys.exit(run_runs(path, ledger, limit, as_json))


@cli.command("plan")
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--base", required=True, help="The git ref to compare with (a branch, tag or commit: origin/main).")
@click.option("--as-of", "as_of", help="Count audiences and forecast from this ISO time (default: now).")
@click.option("--format", "fmt", type=click.Choice(("markdown", "json")), default="markdown", show_default=True,
              help="markdown: a pull request comment; json: for tools.")
@click.option("--data", help="Data URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--no-data", is_flag=True, help="Compare the plans only: no audiences, sends or costs (CI without data).")
def plan(path: Path, base: str, as_of: str | None, fmt: str, data: str | None, ledger: str | None,
         no_data: bool) -> None:
    """What this change does: campaigns added, removed or changed against the workspace at --base, their
    audiences before and after, sends per week and cost per day, users mid-way on changed steps.

    Exit status: 0 compared, 1 errors in the workspace or data that cannot be opened, 2 usage (an unknown ref,
    no git repository), 3 internal error.
    """
    from camp.review import run_plan

    sys.exit(run_plan(path, base, as_of, fmt, data, ledger, no_data))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--alert", "only", help="Only this alert (default: every alert of the workspace).")
@click.option("--as-of", "as_of", help="The clock, ISO 8601 (default: now): each alert's latest occurrence at or "
                                       "before it is evaluated.")
@click.option("--dry-run", is_flag=True, help="Count and say what would be sent; record and send nothing.")
@click.option("--data", help="Data URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def alert(path: Path, only: str | None, as_of: str | None, dry_run: bool, data: str | None, ledger: str | None) -> None:
    """Alerts: count the users each alert is about, compare with its threshold, and send its team one message
    per occurrence of its schedule when crossed.

    Exit status: 0 evaluated, 1 workspace errors, a database that cannot be opened or a message that failed (the
    next run of the occurrence tries again), 2 usage (an unknown alert), 3 internal error.
    """
    from camp.alert import run_alerts

    sys.exit(run_alerts(path, only, as_of, dry_run, data, ledger))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--campaign", help="Only this campaign (default: every campaign with deliveries).")
@click.option("--as-of", "as_of", help="Measure as of this ISO time (default: now); windows not ended are cut here.")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "html")), default="text", show_default=True,
              help="text: tables for people; json: the stable document for tools (docs/report.md); html: one "
                   "self-contained page with charts (`> report.html`).")
@click.option("--data", help="Data URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def report(path: Path, campaign: str | None, as_of: str | None, fmt: str, data: str | None,
           ledger: str | None) -> None:
    """Outcomes: reach per step and arm, conversion of the treated vs the holdout with 95% intervals, uplift,
    sales, redemptions, subsidy, cost per incremental conversion, ROI, targets met or missed.

    Exit status: 0 reported, 1 errors in the workspace or a database that cannot be opened, 2 usage (an
    unknown campaign, no camp.toml), 3 internal error.
    """
    from camp.report import run_report

    sys.exit(run_report(path, campaign, as_of, fmt, data, ledger))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--from", "start", required=True, help="First day (2026-12-01, in the workspace's zone) or an ISO time.")
@click.option("--to", "end", required=True, help="Last day, included (2026-12-31), or an ISO time, excluded.")
@click.option("--format", "fmt", type=click.Choice(("text", "json", "html")), default="text", show_default=True,
              help="text: tables; json: the stable document for tools (docs/simulate.md); html: one self-contained "
                   "page with charts.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here (default: stdout).")
@click.option("--data", help="Data URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL to start from (default: $CAMP_LEDGER_URL, else camp.toml); only read.")
def simulate(path: Path, start: str, end: str, fmt: str, out: Path | None, data: str | None,
             ledger: str | None) -> None:
    """Play the period's schedules, replayed events, journeys and releases against a scratch copy of the ledger
    with the real decision engine; nothing is sent and the real ledger is not written. Reports sends per day,
    spend against budgets, contact pressure against the caps, collisions and suppressions.

    Exit status: 0 simulated, 1 errors in the workspace or data that cannot be read, 2 usage (bad dates, --to
    not after --from, no camp.toml), 3 internal error.
    """
    from camp.simulate import run_simulate

    sys.exit(run_simulate(path, start, end, fmt, out, data, ledger))


class _LedgerGroup(click.Group):
    """`camp ledger [PATH] [options]` lists deliveries (the `list` subcommand); `camp ledger archive ...` archives.
    A first argument that is not a subcommand's name is the listing's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@cli.group("ledger", cls=_LedgerGroup)
def ledger_group() -> None:
    """The ledger: `camp ledger [PATH]` lists deliveries; `camp ledger archive PATH` moves old rows out of the
    tables runs read."""


@ledger_group.command("archive")
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", help="Archive what no decision at this time or later reads (default: now).")
@click.option("--ledger", "url", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--dry-run", is_flag=True, help="Count what would move; move nothing.")
@click.option("--json", "as_json", is_flag=True)
def ledger_archive(path: Path, as_of: str | None, url: str | None, dry_run: bool, as_json: bool) -> None:
    """Move the deliveries and snapshots of settled occurrences that no cap, exclusive hold, journey, coupon, points
    credit or red packet can read any more (at --as-of or later) to camp_deliveries_archive and
    camp_recipients_archive, in one transaction. Reports still read them; an archived occurrence never runs again
    (docs/runtime.md, "Retention")."""
    from camp.archive import run_archive

    sys.exit(run_archive(path, as_of, url, dry_run, as_json))


@ledger_group.command("list")
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--ledger", "url", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
@click.option("--campaign")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--user")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def ledger_cmd(path: Path, url: str | None, campaign: str | None, status: str | None, user: str | None, limit: int,
               as_json: bool) -> None:
    """Deliveries in the ledger: one row per campaign, step, occurrence and user."""
    from camp.run import run_ledger

    sys.exit(run_ledger(path, url, campaign, status, user, limit, as_json))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--work-pool", help="Run the deployments on this work pool's workers (default: served by `camp serve`).")
@click.option("--yes", is_flag=True, help="Apply the changes shown (create, update, delete).")
def deploy(path: Path, work_pool: str | None, yes: bool) -> None:
    """Show what deploying the workspace's campaigns to Prefect would change; apply it with --yes."""
    from camp.deploy import run_deploy

    sys.exit(run_deploy(path, work_pool, yes))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
def serve(path: Path) -> None:
    """Serve every campaign of the workspace from this process (schedules run here)."""
    from camp.deploy import run_serve

    sys.exit(run_serve(path))


@cli.command()
@click.argument("event")
@click.option("--user", required=True, help="The user the event is about.")
@click.option("--occurred", help="When it happened, ISO 8601 (default: now, UTC).")
@click.option("--field", "fields", multiple=True, help="NAME=VALUE of the event's payload; repeatable.")
@click.option("--id", "event_id", help="The event's id, a UUID (default: a new one). Sending an id again is a "
                                      "retry: it runs and schedules nothing twice. For `share`, any text.")
@click.option("--packet", help="share: the red packet shared (default: the user's latest).")
@click.option("--ledger", help="share: ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def emit(event: str, user: str, occurred: str | None, fields: tuple[str, ...], event_id: str | None,
         packet: str | None, ledger: str | None) -> None:
    """Emit a shop event (e.g. `orders`) to Prefect: campaigns triggered `on EVENT` run for the user.
    `share` records a share of the user's red packet in the ledger instead, paid per the packet's decay."""
    if event == "share":
        from camp.resources import run_share

        sys.exit(run_share(Path("."), user, occurred, event_id, packet, ledger))
    from camp.deploy import run_emit

    sys.exit(run_emit(event, user, occurred, fields, event_id))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--user", required=True, help="The user whose balance to show.")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def points(path: Path, user: str, ledger: str | None) -> None:
    """A user's points balance: the points camp issued to them (and those still to issue)."""
    from camp.resources import run_points

    sys.exit(run_points(path, user, ledger))


@cli.group()
def tag() -> None:
    """Manual tags (kept in the ledger, with who, when, why and from where): audiences see them at once in
    `tagged "NAME"`, beside the schema's tags table."""


def _tag_options(remove: bool):
    def wrap(f):
        options = [
            click.argument("name"),
            click.option("--users", help="Comma-separated user ids: 1,2,3."),
            click.option("--file", type=click.Path(dir_okay=False, path_type=Path),
                         help="A CSV file of user ids (first column, or the one headed user_id/id), header row or not."),
            click.option("--audience", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help="A .camp file: the final audience (not excluded, not held out) of its campaign."),
            click.option("--campaign", help="With --audience: which campaign of the file."),
            click.option("--as-of", "as_of", help="With --audience: the time, as `camp audience --as-of`."),
            click.option("--reason", help="Why (kept in the audit trail)."),
            click.option("--workspace", default=".", show_default=True, type=click.Path(exists=True, path_type=Path)),
            click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml)."),
            click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml)."),
        ]
        if remove:
            options.append(click.option("--all", "everyone", is_flag=True, help="From every user who holds it."))
        for option in reversed(options):
            f = option(f)
        return f
    return wrap


@tag.command("add")
@_tag_options(remove=False)
def tag_add(name: str, users: str | None, file: Path | None, audience: Path | None, campaign: str | None,
            as_of: str | None, reason: str | None, workspace: Path, data: str | None, ledger: str | None) -> None:
    """Give the tag NAME to users. Every id must name a user of the users table, else nothing is written (exit 1);
    a user who has it already keeps one row (the audit trail says so)."""
    from camp.tags import run_tag_change

    sys.exit(run_tag_change("add", name, workspace, users, file, audience, campaign, False, reason, as_of, data,
                            ledger))


@tag.command("remove")
@_tag_options(remove=True)
def tag_remove(name: str, users: str | None, file: Path | None, audience: Path | None, campaign: str | None,
               as_of: str | None, reason: str | None, workspace: Path, data: str | None, ledger: str | None,
               everyone: bool) -> None:
    """Take the tag NAME from users (--all: from everyone who holds it)."""
    from camp.tags import run_tag_change

    sys.exit(run_tag_change("remove", name, workspace, users, file, audience, campaign, everyone, reason, as_of,
                            data, ledger))


@tag.command("show")
@click.argument("name")
@click.option("--history", is_flag=True, help="Also every change: who, when, why, from where, per user.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--workspace", default=".", show_default=True, type=click.Path(exists=True, path_type=Path))
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def tag_show(name: str, history: bool, as_json: bool, workspace: Path, ledger: str | None) -> None:
    """Who holds the manual tag NAME now (and with --history, its audit trail)."""
    from camp.tags import run_tag_show

    sys.exit(run_tag_show(name, workspace, history, as_json, ledger))


@cli.command()
@click.argument("path", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", "as_of", help="Segments and labels as of this ISO time (default: now).")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
@click.option("--ledger", help="Ledger URL (default: $CAMP_LEDGER_URL, else camp.toml).")
def tags(path: Path, as_of: str | None, fmt: str, data: str | None, ledger: str | None) -> None:
    """The tag pool: every tag (the schema's table and manual), segment and classification label, with how many
    users hold it."""
    from camp.tags import run_tags

    sys.exit(run_tags(path, as_of, fmt, data, ledger))


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("field")
@click.option("--top", default=10, show_default=True, type=click.IntRange(0, 1000),
              help="How many of the most common values.")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--data", help="Warehouse URL (default: $CAMP_DATA_URL, else camp.toml).")
def describe(path: Path, field: str, top: int, fmt: str, data: str | None) -> None:
    """What the warehouse holds in FIELD (users.city, orders.amount, orders.time): most common values with counts
    and share, null share, distinct values, min and max."""
    from camp.tags import run_describe

    sys.exit(run_describe(path, field, top, fmt, data))


@cli.group()
def demo() -> None:
    """A synthetic shop to try camp on."""


@demo.command("init")
@click.option("--users", default=10_000, show_default=True, help="How many users (1k to 10M).")
@click.option("--seed", default=1, show_default=True, help="The same seed gives the same shop.")
@click.option("--url", help="Database URL (default: [data] url of the workspace's camp.toml).")
@click.option("--workspace", default=".", show_default=True, type=click.Path(exists=True, path_type=Path))
def demo_init(users: int, seed: int, url: str | None, workspace: Path) -> None:
    """Create (replace) the demo tables: users, orders, visits, user_tags, consent."""
    from camp.audience import run_demo_init

    sys.exit(run_demo_init(users, seed, url, workspace))


@demo.command("respond")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=".")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 365),
              help="How many days of the shop's response to write after each user's first send.")
@click.option("--seed", default=1, show_default=True, help="The same seed gives the same orders.")
@click.option("--effect", multiple=True, metavar="CAMPAIGN[:ARM]=TREATED:HOLDOUT",
              help="A campaign's (or one arm's of its entry step) planted conversion rates, e.g. "
                   "winback_high_value=8%:5% or winback_high_value:b=10%:5% (default 8%:5%).")
@click.option("--organic", default="3%", show_default=True, help="Users no campaign touched who order.")
@click.option("--redeem", default="60%", show_default=True, help="Treated converters holding a coupon who use it.")
@click.option("--share", default="30%", show_default=True,
              help="Users holding a sent red packet who share it (then 0 to 4 more times).")
@click.option("--click", default="20%", show_default=True,
              help="Users sent a campaign's message who click it (once, in the goal window; camp.toml [clicks]).")
@click.option("--data", help="Warehouse URL (default: [data] url, $CAMP_DATA_URL).")
@click.option("--ledger", help="Ledger URL (default: [ledger] url, $CAMP_LEDGER_URL).")
def demo_respond(path: Path, days: int, seed: int, effect: tuple[str, ...], organic: str, redeem: str,
                 share: str, click: str, data: str | None, ledger: str | None) -> None:
    """After runs: write the shop's next days of orders with a planted effect per campaign and arm (treated vs
    not), its red packet shares and the clicks on the messages."""
    from camp.respond import main_respond

    main_respond(path, days, seed, effect, organic, redeem, share, click, data, ledger)


EXIT_INTERNAL = 3


def main() -> None:
    """The `camp` executable: click's own exit codes (0, 1, 2) for everything camp meant to happen,
    3 and one line for anything it did not (CAMP_DEBUG=1 adds the traceback)."""
    import os

    for stream in (sys.stdout, sys.stderr):  # a pipe or terminal that cannot show a character must not crash camp
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        cli(prog_name="camp")
    except LeanExit as done:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: let Python's own exit report it
            raise done from None
        os._exit(done.code if isinstance(done.code, int) else 1)
    except Exception as exc:  # the last guard: every expected problem is reported where it happens
        if os.environ.get("CAMP_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        print(internal_error_line(exc), file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


class LeanExit(SystemExit):
    """The end of a command whose process holds a large heap and nothing to clean up (`camp check` of a
    thousand files: a second of work, then 70 ms of Python freeing every AST node at exit). The `camp`
    executable flushes its output and leaves at once, as mypy does; called in-process it is a SystemExit."""


def internal_error_line(exc: BaseException) -> str:
    """`camp: internal error: ValueError: first line of the message (please report; ...)`, one line."""
    try:
        text = " ".join(str(exc).split()) or "(no message)"
    except Exception:  # an exception whose message itself fails
        text = "(the message cannot be shown)"
    if len(text) > 300:
        text = text[:297] + "..."
    return (f"camp: internal error: {type(exc).__name__}: {text} "
            "(please report; rerun with CAMP_DEBUG=1 for the traceback)")
