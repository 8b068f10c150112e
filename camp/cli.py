"""The `camp` command. Imports of the pipeline happen inside commands, so `--help` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

FORMATS = ("text", "json", "github")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="camp")
def cli() -> None:
    """camp: CRM campaigns as code.

    Write campaigns in 5W2H (why, who, what, when, where, how, how much), check them
    in CI, compile audiences to SQL and run them with Prefect.
    """


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for people, json for tools, github for GitHub Actions annotations.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def check(paths: tuple[Path, ...], fmt: str, strict: bool) -> None:
    """Type-check campaigns: every problem with file, line, column, code and hint.

    Exit status: 0 clean, 1 errors (or warnings with --strict), 2 usage.
    """
    from camp.commands import run_check

    sys.exit(run_check(paths or (Path("."),), fmt, strict))


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
def fmt(paths: tuple[Path, ...], check_only: bool) -> None:
    """Rewrite .camp files in the canonical layout (comments are kept)."""
    from camp.commands import run_fmt

    sys.exit(run_fmt(paths or (Path("."),), check_only))


@cli.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a diagnostic code (or list them all)."""
    from camp.commands import run_explain

    sys.exit(run_explain(code))


def main() -> None:
    cli(prog_name="camp")
