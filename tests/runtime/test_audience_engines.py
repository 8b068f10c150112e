"""End to end on realistic data: the demo shop on DuckDB and on PostgreSQL gives every bundled
campaign the same sections on both engines, equal to the reference evaluator."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from compiler.check import check_workspace
from compiler.sql import AudienceSQL
from compiler.workspace import load_workspace
from runtime.demo_data import make_shop
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS, PG_URL, ROOT, require_postgres
from tests.reference import Data, Reference

PROGRAM = check_workspace(load_workspace(Path(CAMPAIGNS))).program
AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _pg_url(schema: str) -> str:
    wh = require_postgres()
    wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    wh.execute(f'CREATE SCHEMA "{schema}"')
    wh.close()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    duck = f"duckdb:///{tmp_path_factory.mktemp('shop') / 'shop.duckdb'}"
    pg = _pg_url(f"camp_shop_{os.getpid()}")
    for url in (duck, pg):
        made = make_shop(url, users=1500, seed=7)
        assert made.counts["users"] == 1500
    yield duck, pg
    wh = connect(PG_URL)
    wh.execute(f'DROP SCHEMA IF EXISTS "camp_shop_{os.getpid()}" CASCADE')
    wh.close()


def _load_reference_data(url: str) -> Data:
    wh = connect(url)
    def rows(table):
        cur = wh.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    data = Data(users=rows("users"), events={"orders": rows("orders"), "visits": rows("visits")},
                tags=[(r["user_id"], r["tag"]) for r in rows("user_tags")])
    wh.close()
    return data


def _sections(url: str, name: str) -> dict[str, set]:
    wh = connect(url)
    c = AudienceSQL(PROGRAM, AS_OF, wh.dialect)
    rows = wh.rows(c.sql(c.campaign(PROGRAM.campaigns[name]), pretty=False))
    wh.close()
    matched = {r[0] for r in rows}
    excluded = {r[0] for r in rows if r[1]}
    held = {r[0] for r in rows if r[2]}
    return {"matched": matched, "excluded": excluded, "held_out": held, "final": matched - excluded - held}


def test_demo_shop_is_deterministic(tmp_path):
    a, b = (f"duckdb:///{tmp_path / n}" for n in ("a.duckdb", "b.duckdb"))
    make_shop(a, 300, seed=3)
    make_shop(b, 300, seed=3)
    q = 'SELECT * FROM "orders" ORDER BY ALL'
    assert connect(a).rows(q) == connect(b).rows(q)


@pytest.mark.parametrize("name", sorted(PROGRAM.campaigns))
def test_every_campaign_same_on_both_engines_and_the_reference(shops, name):
    duck, pg = shops
    data = _load_reference_data(duck)
    expected = Reference(PROGRAM, data, AS_OF).campaign(PROGRAM.campaigns[name])
    assert _sections(duck, name) == expected
    assert _sections(pg, name) == expected


def test_camp_audience_reports_schema_mismatch(tmp_path):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb*"))
    db = connect(f"duckdb:///{ws / 'shop.duckdb'}")
    db.execute("CREATE TABLE users (user_id BIGINT, birthday VARCHAR)")
    db.close()
    r = subprocess.run([sys.executable, "-m", "camp", "audience", "birthday.camp", "--as-of", "2026-12-01T10:00"],
                       cwd=ws, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "`users.birthday` is VARCHAR in the database, but users.birthday (date) needs date" in r.stderr
    assert "table `orders` does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_camp_audience_counts(tmp_path):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb*"))
    run = [sys.executable, "-m", "camp"]
    assert subprocess.run([*run, "demo", "init", "--users", "2000"], cwd=ws, capture_output=True).returncode == 0
    r = subprocess.run([*run, "audience", "winback.camp", "--as-of", "2026-12-01T10:00:00+08:00"], cwd=ws,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for word in ("matched", "excluded", "holdout", "final", "sample:"):
        assert word in r.stdout
    assert ROOT  # the command ran in a copy, not in the repository
