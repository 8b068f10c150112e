"""Plain tables on the terminal for the commands that print rows (run, ledger, report, alert, archive)."""

from __future__ import annotations

import sys


def new_table(columns: list[str], right: frozenset[int] | set[int] = frozenset()):
    """A plain table (rich: Chinese text takes two columns per character and stays aligned)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in right else "left", no_wrap=True, overflow="ellipsis")
    return table


def print_table(table) -> None:
    import shutil

    from rich.console import Console

    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else 240
    Console(width=width, highlight=False, soft_wrap=False).print(table)
