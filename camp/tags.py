"""`camp tag add|remove|show` (manual tags in the ledger, runtime.manual_tags), `camp tags` (the tag pool,
runtime.tag_pool) and `camp describe` (the data dictionary, runtime.describe)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from camp.audience import Shop, _occurrence, checked, parse_as_of

SHOWN = 5  # unknown ids listed before "…"


def actor() -> str:
    """Who makes a change: $CAMP_USER, else the OS user."""
    named = os.environ.get("CAMP_USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def check_tag_name(tag: str) -> str:
    name = tag.strip()
    if not name or "\x00" in name or len(name) > 200:
        raise click.BadParameter("a tag is 1 to 200 characters of text (no NUL)", param_hint="NAME")
    return name


def run_tag_change(action: str, tag: str, workspace: Path, users: str | None, file: Path | None,
                   audience: Path | None, campaign: str | None, everyone: bool, reason: str | None,
                   as_of: str | None, data: str | None, ledger: str | None) -> int:
    """Exit status: 0 written, 1 unknown ids (nothing written) or a database camp cannot open or workspace
    errors, 2 usage."""
    tag = check_tag_name(tag)
    given = [name for name, on in (("--users", users is not None), ("--file", file is not None),
                                   ("--audience", audience is not None), ("--all", everyone)) if on]
    if len(given) != 1:
        choices = "--users, --file, --audience" + (" or --all" if action == "remove" else "")
        raise click.UsageError(f"name the users with exactly one of {choices}"
                               + (f" (got {', '.join(given)})" if given else ""))
    if campaign is not None and audience is None:
        raise click.UsageError("--campaign goes with --audience")
    loaded = checked(audience if audience is not None else workspace)
    if loaded is None:
        return 1
    ws, program, campaigns, _ = loaded
    if program.schema.users is None:
        print(f"camp tag {action}: the workspace declares no users table", file=sys.stderr)
        return 1
    from runtime.ledger.tags import TagChange
    from runtime.manual_tags import Change, UnknownUsers, apply_change, known_users

    with Shop(ws, program, data, f"camp tag {action}", ledger_url=ledger, create_ledger=True) as shop:
        wh, lg = shop.wh, shop.ledger
        if wh is None or lg is None:
            return 1
        ids: list[str] | None
        if users is not None:
            from camp.tag_ids import ids_from_text

            ids, source = ids_from_text(users), "users"
        elif file is not None:
            from camp.tag_ids import ids_from_csv

            ids = ids_from_csv(file, program.schema.users.key, lambda i: i in known_users(wh, program.schema, [i]))
            source = f"file:{file.resolve()}"
        elif audience is not None:
            c = _campaign(campaigns, campaign, audience)
            at, today, _ = _occurrence(c, parse_as_of(as_of, program.timezone))
            rows = shop.audience(c, at, today)
            ids = sorted({str(r[0]) for r in rows if not r[1] and not r[2]})
            source = f"audience:{audience.resolve()}#{c.name}@{at.astimezone(UTC).isoformat()}"
        else:
            ids, source = None, "all"
        if users is not None and not ids:
            raise click.BadParameter("names no user id", param_hint="--users")
        change = Change(tag, action, ids, actor(), datetime.now(UTC), reason, source)
        try:
            done: TagChange = apply_change(wh, lg, program.schema, change)
        except UnknownUsers as exc:
            shown = ", ".join(exc.unknown[:SHOWN]) + (", …" if len(exc.unknown) > SHOWN else "")
            what = "user" if action == "add" else "user or holder of the tag"
            print(f"camp tag {action} {tag}: {len(exc.unknown):,} of {exc.named:,} ids name no {what} "
                  f"(users table {program.schema.users.table}): {shown}; nothing written", file=sys.stderr)
            return 1
    if action == "add":
        print(f"camp tag add {tag}: {len(done.changed):,} added, {len(done.unchanged):,} already tagged "
              f"(change {done.change_id}, by {change.actor})")
    else:
        print(f"camp tag remove {tag}: {len(done.changed):,} removed, {len(done.unchanged):,} did not have it "
              f"(change {done.change_id}, by {change.actor})")
    return 0


def _campaign(campaigns, name: str | None, file: Path):
    if name is not None:
        for c in campaigns:
            if c.name == name:
                return c
        raise click.BadParameter(f"{file} declares no campaign {name}"
                                 + (f"; it declares {', '.join(c.name for c in campaigns)}" if campaigns else ""),
                                 param_hint="--campaign")
    if len(campaigns) != 1:
        listed = ", ".join(c.name for c in campaigns)
        raise click.BadParameter(f"{file} declares {len(campaigns)} campaigns" + (f" ({listed}): name one with "
                                 "--campaign" if campaigns else ""), param_hint="--audience")
    return campaigns[0]


def run_tag_show(tag: str, workspace: Path, history: bool, as_json: bool, ledger: str | None) -> int:
    tag = check_tag_name(tag)
    loaded = checked(workspace)
    if loaded is None:
        return 1
    ws = loaded[0]
    from camp.audience import _ledger

    try:
        lg = _ledger(ws, None, ledger)
    except Exception as exc:  # noqa: BLE001 (any driver's error)
        print(f"camp tag show: cannot open the ledger: {type(exc).__name__}: {exc}".strip(), file=sys.stderr)
        print("  hint: check [ledger] url in camp.toml, --ledger or $CAMP_LEDGER_URL", file=sys.stderr)
        return 1
    holders = lg.tag_holders(tag) if lg else []
    events = lg.tag_history(tag) if lg and history else []
    if lg:
        lg.close()
    if as_json:
        out: dict[str, Any] = {"tag": tag, "users": len(holders), "holders": [
            {"user_id": h.user_id, "added_at": h.added_at.isoformat(), "added_by": h.added_by} for h in holders]}
        if history:
            out["history"] = [{"change_id": e.change_id, "user_id": e.user_id, "action": e.action,
                               "effect": e.effect, "actor": e.actor, "at": e.at.isoformat(), "reason": e.reason,
                               "source": e.source} for e in events]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    from camp.tables import new_table, print_table

    print(f"manual tag {tag}: {len(holders):,} users")
    if holders:
        table = new_table(["user", "added at", "by"])
        for h in holders:
            table.add_row(h.user_id, f"{h.added_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z", h.added_by)
        print_table(table)
    if history:
        print(f"history ({len(events):,} rows, oldest first)")
        table = new_table(["at", "by", "action", "user", "effect", "source", "reason"])
        for e in events:
            table.add_row(f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z", e.actor, e.action, e.user_id, e.effect,
                          e.source, e.reason or "")
        print_table(table)
    return 0


def run_tags(path: Path, as_of: str | None, fmt: str, data: str | None, ledger: str | None) -> int:
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    if program.schema.users is None:
        print("camp tags: the workspace declares no users table", file=sys.stderr)
        return 1
    from runtime.tag_pool import tag_pool

    when = parse_as_of(as_of, program.timezone)
    with Shop(ws, program, data, "camp tags", ledger_url=ledger) as shop:
        if shop.wh is None:
            return 1
        pool = tag_pool(program, shop.wh, shop.ledger, when)
    if fmt == "json":
        print(json.dumps({
            "as_of": pool.as_of.isoformat(), "users": pool.users,
            "tags": [{"tag": t.tag, "users": t.users, "schema": t.schema, "manual": t.manual} for t in pool.tags],
            "segments": [{"segment": s, "users": n, "last": _last_json(pool, s, "yes")} for s, n in pool.segments.items()],
            "classifications": [{"classification": c, "labels": [{"label": x.label, "users": x.users,
                                                                  "last": _last_json(pool, c, x.label)}
                                                                 for x in labels]}
                                for c, labels in pool.classifications.items()],
        }, ensure_ascii=False, indent=1))
        return 0
    from camp.tables import new_table, print_table

    def share(n: int) -> str:
        return f"{100 * n / pool.users:.1f}%" if pool.users else "-"

    print(f"the tag pool of {pool.users:,} users; segments and labels as of {pool.as_of.isoformat()}, tags now")
    table = new_table(["kind", "name", "users", "share", "from", "since materialised"], right={2, 3, 5})
    for t in pool.tags:
        source = " + ".join(f"{what} {n:,}" for what, n in (("table", t.schema), ("manual", t.manual)) if n)
        table.add_row("tag", t.tag, f"{t.users:,}", share(t.users), source, "")
    for s, n in pool.segments.items():
        table.add_row("segment", s, f"{n:,}", share(n), "", _change(pool, s, "yes", n))
    for c, labels in pool.classifications.items():
        for x in labels:
            table.add_row("label", f"{c} = {x.label}", f"{x.users:,}", share(x.users), "", _change(pool, c, x.label,
                                                                                                   x.users))
    print_table(table)
    return 0


def _last_json(pool, name: str, label: str) -> dict | None:
    last = pool.last.get(name)
    return None if last is None else {"as_of": last.as_of.isoformat(), "users": last.counts.get(label, 0)}


def _change(pool, name: str, label: str, now: int) -> str:
    """`+12 since 12-06 02:00` (in UTC) for a materialised name; empty for one that is not."""
    last = pool.last.get(name)
    if last is None:
        return ""
    return f"{now - last.counts.get(label, 0):+,} since {last.as_of.astimezone(UTC):%m-%d %H:%M}"


def run_describe(path: Path, name: str, top: int, fmt: str, data: str | None) -> int:
    loaded = checked(path)
    if loaded is None:
        return 1
    ws, program, _, _ = loaded
    from runtime.describe import UnknownField, describe, target_of

    try:
        target = target_of(program.schema, name)
    except UnknownField as exc:
        raise click.BadParameter(str(exc), param_hint="FIELD") from None
    with Shop(ws, program, data, "camp describe") as shop:
        if shop.wh is None:
            return 1
        p = describe(shop.wh, target, top)
    if fmt == "json":
        print(json.dumps({
            "field": p.name, "type": p.type, "table": p.table, "rows": p.rows, "nulls": p.nulls,
            "null_share": p.null_share, "distinct": p.distinct, "min": _plain(p.min), "max": _plain(p.max),
            "top": [{"value": _plain(v), "rows": n, "share": p.share(n)} for v, n in p.top],
        }, ensure_ascii=False, indent=1))
        return 0
    from camp.tables import new_table, print_table

    print(f"{p.name} ({p.type}, table {p.table}): {p.rows:,} rows, {p.distinct:,} distinct values, "
          f"null {p.nulls:,} ({100 * p.null_share:.1f}%)")
    if p.min is not None or p.max is not None:
        print(f"  min {_plain(p.min)}  max {_plain(p.max)}")
    if p.top:
        table = new_table(["value", "rows", "share"], right={1, 2})
        for v, n in p.top:
            table.add_row(str(_plain(v)), f"{n:,}", _percent(p.share(n)))
        print_table(table)
    return 0


def _percent(share: float) -> str:
    return "<0.1%" if 0 < share < 0.001 else f"{100 * share:.1f}%"


def _plain(v: Any) -> Any:
    """A value as JSON holds it: money and numbers exact as text when not whole, times in ISO 8601."""
    from datetime import date
    from decimal import Decimal

    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v
