"""The users a `camp tag` change names: `--users 1,2,3`, `--file ids.csv` (with or without a header row) or
`--audience FILE [--campaign C]` (the final audience: matched, not excluded, not held out). Ids are text, in the
order given, each once.

A CSV file's first row is a header when it is not a known user id and looks like one: it is a usual name of the
id column (user_id, id, user, uid, the users key) or, unlike every row below it, it has no digit or is not a
number. Of several columns the id column is the one whose header has such a name, else the first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import click

HEADER_NAMES = ("user_id", "userid", "user", "uid", "id", "customer_id", "customerid", "customer")


def ids_from_text(text: str) -> list[str]:
    """`1, 2,3` -> ['1', '2', '3']: comma separated, blanks dropped, each once."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def ids_from_csv(path: Path, key: str, is_known: Callable[[str], bool]) -> list[str]:
    """The ids of a CSV file (comma, semicolon or tab separated; UTF-8, with or without a BOM). `is_known`: whether
    a text is some user's id (asked of the first row only). A file camp cannot read is a usage error."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="--file") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint="--file") from None
    if "\x00" in text:
        raise click.BadParameter(f"{path} is not a text file (it holds a NUL byte)", param_hint="--file")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    rows = [row for row in rows if any(row)]
    if not rows:
        raise click.BadParameter(f"{path} holds no user ids", param_hint="--file")
    names = {*HEADER_NAMES, key.lower()}
    first = rows[0]
    column = next((i for i, cell in enumerate(first) if cell.lower() in names), 0)
    if _is_header(first, column, rows[1:], names, is_known):
        rows = rows[1:]
    else:
        column = 0
    ids = [row[column] if column < len(row) else "" for row in rows]
    return list(dict.fromkeys(i for i in ids if i))


def _is_header(first: list[str], column: int, rest: list[list[str]], names: set[str],
               is_known: Callable[[str], bool]) -> bool:
    cell = first[column] if column < len(first) else ""
    if not cell or is_known(cell):
        return False
    if cell.lower() in names:
        return True
    below = [row[column] for row in rest if column < len(row) and row[column]]
    if not below:
        return False
    if not any(ch.isdigit() for ch in cell) and all(any(ch.isdigit() for ch in b) for b in below):
        return True
    return not cell.isdigit() and all(b.isdigit() for b in below)
