"""`camp materialize`: the labels of materialised classifications as of each day -> the ledger's history, checked
against an independent pandas computation from the raw tables of the demo shop, on DuckDB and PostgreSQL (the
shop's tables and the ledger in the same engine)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from runtime.demo_data import make_shop
from runtime.labels import backfill, materialize, schedule_times
from runtime.ledger import open_ledger
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp, make_workspace

SHANGHAI = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)


def _workspace(root: Path, extra: str = "") -> Path:
    shutil.copytree(CAMPAIGNS, root)
    (root / "alerts.camp").unlink()  # the bundled declaration: these tests write their own
    (root / "materialize.camp").write_text("materialize lifecycle, value_quadrant daily at 02:00\n" + extra,
                                           encoding="utf-8")
    return root


def _program(root: Path):
    result = check_workspace(load_workspace(root))
    assert not result.errors, result.errors
    return result.program


def _data_url(ledger_url: str, tmp_path: Path) -> str:
    """The shop beside the ledger: the same PostgreSQL schema, or a DuckDB file of its own."""
    return ledger_url if ledger_url.startswith("postgres") else f"duckdb:///{tmp_path / 'shop.duckdb'}"


def _pandas_labels(orders: pd.DataFrame, users: pd.Series, at: datetime) -> pd.DataFrame:
    """lifecycle and value_quadrant of every user at `at`, from the raw orders, as campaigns/segments.camp
    defines them (days on the Shanghai wall clock, windows half-open, only orders before `at`)."""
    def ago(days: int) -> pd.Timestamp:
        return pd.Timestamp(at - timedelta(days=days))  # Shanghai has no daylight saving: wall days are 24 h

    before = orders[orders["created_at"] < pd.Timestamp(at)]
    g = before.groupby("user_id")

    def count(lo, hi=None):
        hi = pd.Timestamp(at) if hi is None else hi
        inside = before[(before["created_at"] >= lo) & (before["created_at"] < hi)]
        return inside.groupby("user_id").size().reindex(users, fill_value=0)

    c30, c60_30, c90, c180 = count(ago(30)), count(ago(60), ago(30)), count(ago(90)), count(ago(180))
    anyever = g.size().reindex(users, fill_value=0) > 0
    first = g["created_at"].min().reindex(users)
    s90 = before[before["created_at"] >= ago(90)].groupby("user_id")["amount"].sum().reindex(users, fill_value=0)
    out = pd.DataFrame(index=users)
    life = pd.Series("potential", index=users)
    rules = [("new", first.notna() & (first >= ago(30))), ("mature", c30 >= 5), ("declining", c30 < c60_30),
             ("silent", (c30 == 0) & (c180 > 0)), ("churned", (c180 == 0) & anyever)]
    taken = pd.Series(False, index=users)
    for label, cond in rules:
        life[cond & ~taken] = label
        taken |= cond
    out["lifecycle"] = life
    hf, hv = c90 >= 5, s90.astype(float) >= 1000
    out["value_quadrant"] = "lf_lv"
    out.loc[~hf & hv, "value_quadrant"] = "lf_hv"
    out.loc[hf & ~hv, "value_quadrant"] = "hf_lv"
    out.loc[hf & hv, "value_quadrant"] = "hf_hv"
    return out


def _ledger_labels(lg, name: str, at: datetime) -> pd.Series:
    rows = lg.rows("SELECT user_id, label FROM camp_label_history WHERE name = ? AND valid_from <= ? AND "
                   "(valid_to IS NULL OR valid_to > ?)", (name, at, at))
    s = pd.Series({int(u): lab for u, lab in rows})
    assert len(s) == len(rows), "one label per user at one time"
    return s


def test_backfill_90_days_migration_matrix_equals_pandas(ledger, tmp_path):
    root = _workspace(tmp_path / "ws")
    program = _program(root)
    data_url = _data_url(ledger, tmp_path)
    make_shop(data_url, users=1500, seed=3)
    lg = open_ledger(ledger)
    try:
        done = backfill(program, data_url, lg, ["lifecycle", "value_quadrant"], T, 90)
        times = schedule_times(program, "lifecycle", T, 90)
        assert len(times) == 92 and times[-1] == T  # 91 days at 02:00 from 90 days back, then T itself
        assert all(r.state == "recorded" for r in done) and len(done) == 2 * 92
        wh = connect(data_url, read_only=True)
        orders = wh.frame('SELECT user_id, created_at, amount FROM "orders"')
        users = pd.Series(sorted(int(u) for (u,) in wh.rows('SELECT user_id FROM "users"')))
        wh.close()
        orders["user_id"] = orders["user_id"].astype(int)
        orders["created_at"] = pd.to_datetime(orders["created_at"], utc=True)
        orders["amount"] = orders["amount"].astype(float)
        d1, d2 = times[30], T  # 60 days before T's day at 02:00 Shanghai (18:00 UTC the evening before), and T
        assert d1.astimezone(SHANGHAI).hour == 2
        want1, want2 = _pandas_labels(orders, users, d1), _pandas_labels(orders, users, d2)
        for name in ("lifecycle", "value_quadrant"):
            got1, got2 = _ledger_labels(lg, name, d1), _ledger_labels(lg, name, d2)
            assert len(got1) == len(got2) == len(users)
            got = pd.crosstab(got1.reindex(users.values), got2.reindex(users.values))
            want = pd.crosstab(want1[name], want2[name])
            assert got.values.sum() == len(users)
            pd.testing.assert_frame_equal(got, want, check_names=False, check_dtype=False)
            moved = int(got.values.sum() - got.values.trace()) if got.shape[0] == got.shape[1] else None
            assert moved is None or moved > 0, f"{name}: nobody moved in 60 days: the matrix tests little"
    finally:
        lg.close()


def test_materializing_is_idempotent_and_a_stable_population_costs_one_row_per_user(ledger, tmp_path):
    """Running the same as-of time twice changes nothing; 90 days of a label that does not change keep one
    row per user; an as-of time before the latest is refused, not written."""
    root = _workspace(tmp_path / "ws", 'classify tier by first match {\n  gold = member_level = "gold"\n'
                                       '  other = otherwise\n}\nmaterialize tier daily at 03:00\n')
    program = _program(root)
    data_url = _data_url(ledger, tmp_path)
    make_shop(data_url, users=300, seed=5)
    lg = open_ledger(ledger)
    try:
        first = materialize(program, data_url, lg, ["tier", "lifecycle"], T)
        rows = lg.one("SELECT count(*) FROM camp_label_history")
        again = materialize(program, data_url, lg, ["tier", "lifecycle"], T)
        assert [r.state for r in first] == ["recorded", "recorded"] and [r.state for r in again] == ["done", "done"]
        assert lg.one("SELECT count(*) FROM camp_label_history") == rows
        later = T + timedelta(days=90)
        backfill(program, data_url, lg, ["tier"], later, 90)
        assert lg.one("SELECT count(*) FROM camp_label_history WHERE name = 'tier'") == 300
        assert lg.one("SELECT count(*) FROM camp_materializations WHERE name = 'tier'") >= 90
        refused = materialize(program, data_url, lg, ["tier"], T + timedelta(days=1))
        assert [r.state for r in refused] == ["later"]
        assert lg.one("SELECT count(*) FROM camp_label_history WHERE name = 'tier'") == 300
    finally:
        lg.close()


def test_camp_materialize_command(tmp_path):
    """A real process: a backfill prints what it did; the same time again changes nothing (exit 0); an earlier
    time is refused (exit 1); a bad --backfill is a usage error (exit 2, no traceback)."""
    root = make_workspace(tmp_path / "ws", {"materialize.camp": "materialize lifecycle, value_quadrant daily at 02:00\n"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", users=200, seed=2)
    r = camp("materialize", ".", "--as-of", "2026-12-01T10:00", "--backfill", "3d", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "backfilled 3 days (5 times materialised)" in r.stdout and "lifecycle: 200 users labelled" in r.stdout
    r = camp("materialize", ".", "--as-of", "2026-12-01T10:00", cwd=root)
    assert r.returncode == 0 and "nothing changed" in r.stdout, r.stdout + r.stderr
    r = camp("materialize", ".", "--as-of", "2026-11-01T10:00", cwd=root)
    assert r.returncode == 1 and "only grows forward" in r.stderr
    r = camp("materialize", ".", "--backfill", "ninety", cwd=root)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--backfill" in r.stderr
    r = camp("materialize", ".", "--name", "engagement", cwd=root)
    assert r.returncode == 1 and "not materialised by any declaration" in r.stderr


def test_camp_tags_shows_the_change_since_the_last_materialisation(tmp_path):
    """After `camp materialize` at T, `camp tags` as of a week later gives each materialised label its users at T
    (the ledger's history, equal to the labels the audience SQL gave at T) and the change since; labels of names
    not materialised have none."""
    import json

    root = make_workspace(tmp_path / "ws", {"materialize.camp": "materialize lifecycle daily at 02:00\n"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", users=400, seed=3)
    assert camp("materialize", ".", "--as-of", "2026-12-01T10:00", cwd=root).returncode == 0
    then = json.loads(camp("tags", ".", "--as-of", "2026-12-01T10:00", "--format", "json", cwd=root).stdout)
    later = camp("tags", ".", "--as-of", "2026-12-08T10:00", "--format", "json", cwd=root)
    assert later.returncode == 0, later.stderr
    doc = json.loads(later.stdout)
    by = {c["classification"]: c["labels"] for c in doc["classifications"]}
    at_t = {x["label"]: x["users"] for x in {c["classification"]: c["labels"] for c in then["classifications"]}["lifecycle"]}
    assert {x["label"]: x["last"]["users"] for x in by["lifecycle"]} == at_t  # what was materialised at T
    assert {x["last"]["as_of"] for x in by["lifecycle"]} == {"2026-12-01T02:00:00+00:00"}
    assert sum(at_t.values()) == 400 and any(x["users"] != x["last"]["users"] for x in by["lifecycle"])
    assert all(x["last"] is None for x in by["value_quadrant"])
    text = camp("tags", ".", "--as-of", "2026-12-08T10:00", cwd=root).stdout
    x = by["lifecycle"][0]
    assert f"{x['users'] - x['last']['users']:+,} since 12-01 02:00" in text


SLIP = """campaign slip_back "从高频低价滑落" {
  who moved value_quadrant from hf_lv to lf_lv within 30d or lifecycle was mature 60d ago
  when daily at 10:00
  where push template "slip.j2"
  how
    step touch: notify where
}
"""


def _rows(wh, sql: str) -> list[dict]:
    cur = wh.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_audience_and_run_read_the_history_and_warn_when_it_is_short(ledger, tmp_path):
    """Real processes, the shop and the ledger on DuckDB or PostgreSQL: before any materialisation `camp audience` warns and the history conditions hold for
    nobody; after a 30-day backfill it warns that `60d ago` reaches before the history, and `camp audience` and
    `camp run --dry-run` count the users the reference evaluator finds from the shop's rows and the ledger's
    history."""
    import os
    import re

    from tests.reference import Data, Reference

    root = make_workspace(tmp_path / "ws", {"materialize.camp": "materialize lifecycle, value_quadrant daily at 02:00\n",
                                            "slip.camp": SLIP}, templates={"slip.j2": "{{ user.name }}"})
    data_url = _data_url(ledger, tmp_path)
    make_shop(data_url, users=600, seed=7)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "CAMP_DATA_URL": data_url,
           "CAMP_LEDGER_URL": ledger}
    as_of = "2026-12-01T10:00:00+08:00"
    before = camp("audience", "slip.camp", "--as-of", as_of, "--count", cwd=root, env=env)
    assert before.returncode == 0, before.stderr
    assert re.search(r"final\s+0\b", before.stdout) and "never been materialised" in before.stderr
    assert camp("materialize", ".", "--as-of", as_of, "--backfill", "30d", cwd=root, env=env).returncode == 0
    after = camp("audience", "slip.camp", "--as-of", as_of, "--count", cwd=root, env=env)
    assert after.returncode == 0, after.stderr
    assert "the history of lifecycle starts at" in after.stderr and "value_quadrant" not in after.stderr
    final = int(re.search(r"final\s+([\d,]+)", after.stdout).group(1).replace(",", ""))
    run = camp("run", "slip.camp", "--as-of", as_of, "--dry-run", "--no-progress", cwd=root, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(re.search(r"^  final\s+([\d,]+)", run.stdout, re.M).group(1).replace(",", "")) == final
    program = _program(root)
    wh = connect(data_url, read_only=True)
    data = Data(users=_rows(wh, 'SELECT * FROM "users"'),
                events={"orders": _rows(wh, 'SELECT * FROM "orders"'), "visits": _rows(wh, 'SELECT * FROM "visits"')})
    wh.close()
    lg = open_ledger(ledger)
    data.history = [tuple(r) for r in lg.rows("SELECT name, user_id, label, valid_from, valid_to FROM camp_label_history")]
    lg.close()
    c = program.campaigns["slip_back"]
    expected = Reference(program, data, datetime.fromisoformat(as_of)).campaign(c)["final"]
    assert final == len(expected) > 0
