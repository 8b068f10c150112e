"""A command that only reads the ledger (`camp report`, `camp runs`, `camp ledger`, `camp points`) -> the
workspace's ledger when one exists. Such a command never creates one: on a workspace that has not run yet it
says so and exits 0 (docs/runtime.md, "Reading the ledger before any run")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.ledger import Ledger


def no_ledger(cmd: str, url: str) -> str:
    """What a read-only command says on a workspace without a ledger (stable: scripts may look for it)."""
    return f"{cmd}: no ledger yet at {url}: run `camp run` first"


def cannot_open(cmd: str, url: str, exc: Exception) -> None:
    """Say why the ledger at `url` cannot be opened, and where its URL comes from."""
    print(f"{cmd}: cannot open the ledger {url}: {type(exc).__name__}: {exc}".strip(), file=sys.stderr)
    print("  hint: check [ledger] url in camp.toml, --ledger or $CAMP_LEDGER_URL", file=sys.stderr)


def existing_ledger(cmd: str, url: str, empty: str | None = None) -> Ledger | int:
    """The ledger at `url` (pending migrations applied) when one exists; otherwise the command's exit status
    after saying why there is none: 0 with `no_ledger` on stdout (with `empty`, the command's empty
    machine-readable answer goes to stdout instead and the sentence to stderr), 1 when it cannot be opened."""
    from runtime.ledger import open_existing_ledger

    try:
        ledger = open_existing_ledger(url)
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        cannot_open(cmd, url, exc)
        return 1
    if ledger is None:
        if empty is None:
            print(no_ledger(cmd, url))
        else:
            print(empty)
            print(no_ledger(cmd, url), file=sys.stderr)
        return 0
    return ledger


def workspace_ledger(cmd: str, path: Path, ledger: str | None, empty: str | None = None) -> Ledger | int:
    """`existing_ledger` of the workspace at `path` (`--ledger`, else $CAMP_LEDGER_URL, else camp.toml); exits 2
    when there is no camp.toml there, as `camp check` does."""
    from compiler.workspace import load_workspace
    from dsl.diagnostics import Diagnostic

    ws = load_workspace(path)
    if isinstance(ws, Diagnostic):
        from dsl.diagnostics import render_text

        print(render_text([ws], {}), file=sys.stderr)
        sys.exit(2)  # no camp.toml: a usage error
    from runtime.warehouse import run_urls

    return existing_ledger(cmd, run_urls(ws, None, ledger)[1], empty)
