"""`camp ledger archive` (issue 16): moving old rows out changes no decision and no report.

A ledger gets eight days of history from real `camp run` processes (two daily push campaigns of one exclusive group
under 7-day policy caps, a journey's follow-up, and a campaign cap without a window), the last day's follow-up
left to run. A copy of it is archived; then the same later runs go to both, and every row they write is equal, as
are the reports. The archive moved most of the history, kept what a cap without a window counts and the
unfinished journey, lost and duplicated nothing, and refuses the runs that would read what it moved. DuckDB and
PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.demo_data import make_shop
from runtime.warehouse import connect
from tests.runtime.conftest import camp, make_workspace, two_databases
from tests.runtime.sim_workspace import POLICY, TEMPLATES
from tests.runtime.sim_workspace import A as SIM_A
from tests.runtime.sim_workspace import B as SIM_B

SEASON = ("from 2026-11-24 to 2026-11-28", "from 2026-11-20 to 2026-12-31")
A = SIM_A.replace(*SEASON)
B = SIM_B.replace(*SEASON).replace("  how much\n", "  how much\n    cap 2 messages per user\n")
HISTORY = [f"2026-11-{d}" for d in range(20, 28)]  # 20th .. 27th
OPEN = HISTORY[-1]  # its follow-up is left to run after the archive (a day's run also catches up the day before's)
ARCHIVE_AT = "2026-12-05T10:00+08:00"  # horizon: 7 days of caps and hold back, 2026-11-28 10:00
COLS = "campaign, step, occurrence, user_id, arm, channel, status, reason, cost, exclusive_group, due_at, not_before"


def _ok(r) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _run(root: Path, env: dict, *args: str) -> str:
    return _ok(camp("run", *args, "--no-progress", cwd=root, env=env, timeout=300))


def _rows(url: str, sql: str) -> list[tuple]:
    wh = connect(url, read_only=True)
    try:
        return sorted(tuple(str(v) for v in r) for r in wh.rows(sql))
    finally:
        wh.close()


def _copy_ledger(src: str, dest: str) -> None:
    """The whole ledger, row for row: a DuckDB file copied; a PostgreSQL schema migrated, then every table filled."""
    if src.startswith("duckdb"):
        shutil.copy(src.removeprefix("duckdb:///"), dest.removeprefix("duckdb:///"))
        return
    from runtime.ledger import open_ledger

    open_ledger(dest).close()
    a, b = connect(src, read_only=True), connect(dest)
    try:
        tables = [t for (t,) in a.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                       "current_schema() AND table_type = 'BASE TABLE' AND table_name <> "
                                       "'camp_migrations'")]
        for t in tables:
            cols = [c for (c,) in a.execute("SELECT column_name FROM information_schema.columns WHERE table_name = "
                                            "%s AND table_schema = current_schema() ORDER BY ordinal_position",
                                            (t,)).fetchall()]
            rows = a.rows(f"SELECT {', '.join(cols)} FROM {t}")
            if rows:
                b.bulk_insert(t, cols, rows)
    finally:
        a.close()
        b.close()


@pytest.fixture(params=["duckdb", "postgres"])
def ledgers(request, tmp_path):
    """(the ledger kept whole, the one archived)."""
    yield from two_databases(request.param, tmp_path, ("whole", "archived"))


def test_archiving_changes_no_decision_and_no_report(tmp_path, prefect_env, ledgers):
    whole, archived = ledgers
    root = make_workspace(tmp_path / "ws", {"a.camp": A, "b.camp": B}, policy=POLICY, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=1)
    env = {**prefect_env, "CAMP_LEDGER_URL": whole}
    for day in HISTORY:
        _run(root, env, str(root), "--as-of", f"{day}T10:00+08:00")
        if day != OPEN:
            _run(root, env, str(root / "a.camp"), "--step", "nudge", "--as-of", f"{day}T12:00+08:00")
    _copy_ledger(whole, archived)
    every = _rows(whole, f"SELECT idempotency_key, {COLS} FROM camp_deliveries")
    assert _rows(archived, f"SELECT idempotency_key, {COLS} FROM camp_deliveries") == every

    arch_env = {**env, "CAMP_LEDGER_URL": archived}
    preview = json.loads(_ok(camp("ledger", "archive", str(root), "--as-of", ARCHIVE_AT, "--dry-run", "--json",
                                  cwd=root, env=arch_env)))
    assert _rows(archived, f"SELECT idempotency_key, {COLS} FROM camp_deliveries") == every  # a dry run moves nothing
    doc = json.loads(_ok(camp("ledger", "archive", str(root), "--as-of", ARCHIVE_AT, "--json", cwd=root,
                              env=arch_env)))
    assert {k: v for k, v in doc.items() if k != "dry_run"} == {k: v for k, v in preview.items() if k != "dry_run"}
    assert doc["horizon"] == "2026-11-28T10:00:00+08:00"
    assert doc["kept_forever"] == [{"channel": None, "campaign": "promo_b"}]

    # nothing lost, nothing twice: every row is in one table or the other, unchanged
    hot = _rows(archived, f"SELECT idempotency_key, {COLS} FROM camp_deliveries")
    cold = _rows(archived, f"SELECT idempotency_key, {COLS} FROM camp_deliveries_archive")
    assert sorted(hot + cold) == every and not {r[0] for r in hot} & {r[0] for r in cold}
    assert len(cold) == doc["moved"] > len(every) // 2  # most of the history moved
    assert ("promo_a", "2026-11-20T02:00Z") in {(r[1], r[3]) for r in cold}
    # kept: promo_b's counted deliveries (its cap has no window) and the 27th's unfinished journey (due before the
    # horizon)
    assert doc["kept"] > 0 and all(r[1] == "promo_b" and r[7] == "sent" for r in hot if r[11] < "2026-11-26")
    assert not any(r[1] == "promo_a" and r[3].startswith(OPEN) for r in cold)
    assert any(r[1] == "promo_a" and r[3].startswith(OPEN) for r in hot)
    assert any(r[1] == "promo_b" and r[3].startswith(OPEN) for r in cold)  # no journey: that one is over
    assert ("promo_a", "2026-11-26T02:00Z") in {(r[1], r[3]) for r in cold}
    assert _rows(archived, "SELECT count(*) FROM camp_recipients_archive")[0][0] == str(doc["recipients"]) != "0"

    # the same later runs on both ledgers: the 27th's follow-up, late, then two days of both campaigns
    before = {u: set(r[0] for r in _rows(u, "SELECT idempotency_key FROM camp_deliveries")) for u in (whole, archived)}
    for url in (whole, archived):
        e = {**env, "CAMP_LEDGER_URL": url}
        _run(root, e, str(root / "a.camp"), "--step", "nudge", "--occurrence", f"{OPEN}T10:00+08:00", "--as-of",
             "2026-12-05T10:00+08:00")
        for day in ("2026-12-05", "2026-12-06"):
            _run(root, e, str(root), "--as-of", f"{day}T10:00+08:00")
    new = [[r[1:] for r in _rows(u, f"SELECT idempotency_key, {COLS} FROM camp_deliveries") if r[0] not in before[u]]
           for u in (whole, archived)]
    assert new[0] == new[1]
    late = [r for r in new[0] if r[0] == "promo_a" and r[1] == "nudge" and r[2] == "2026-11-27T02:00Z"]
    assert any(r[6] == "sent" for r in late)  # the late follow-up reached the kept journey's users
    b_cap = [r for r in new[0] if r[0] == "promo_b" and r[6] == "suppressed" and "2 messages per user" in r[7]]
    assert b_cap  # promo_b's cap without a window stopped users it had reached in the archived days

    # reports read archived deliveries too
    reports = [json.loads(_ok(camp("report", str(root), "--as-of", "2026-12-07T10:00+08:00", "--format", "json",
                                   cwd=root, env={**env, "CAMP_LEDGER_URL": u}))) for u in (whole, archived)]
    assert reports[0] == reports[1] and reports[0]["campaigns"]

    # runs that would read what was moved are refused, with what to do
    r = camp("run", str(root / "b.camp"), "--as-of", f"{HISTORY[0]}T10:00+08:00", "--no-progress", cwd=root,
             env=arch_env)
    assert r.returncode == 1 and "was archived on" in r.stderr and "Traceback" not in r.stderr
    r = camp("run", str(root / "b.camp"), "--as-of", "2026-12-01T10:00+08:00", "--no-progress", cwd=root,
             env=arch_env)
    assert r.returncode == 1 and "look back to" in r.stderr and "run it at an as-of of" in r.stderr
    assert "stopped after sending" not in r.stderr  # a refused run never started
    r = camp("simulate", str(root), "--from", "2026-12-01", "--to", "2026-12-02", cwd=root, env=arch_env)
    assert r.returncode == 1 and "look back to" in r.stderr and "Traceback" not in r.stderr

    # a second archive at the same as-of finds nothing more to move
    again = json.loads(_ok(camp("ledger", "archive", str(root), "--as-of", ARCHIVE_AT, "--json", cwd=root,
                                env=arch_env)))
    assert again["moved"] == 0 and again["recipients"] == 0
    assert len(_rows(archived, "SELECT idempotency_key FROM camp_deliveries_archive")) == doc["moved"]
