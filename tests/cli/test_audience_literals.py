"""`camp audience` warns about literals that never occur in the data, on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from camp.literals import absent_literals, probes
from compiler.check import check_workspace
from compiler.workspace import load_workspace
from runtime.demo_data import make_shop
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS, PG_URL, require_postgres

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CAMPAIGN = '''segment sh = city in ("Shanghai", "北京")

campaign c {
  who segment sh and (tagged "vip" or tagged "VIPP") and user.city != "x"
  exclude gender = "unknown" or lifecycle in (silent, churned)
  when daily at 10:00
  where push template "ok.j2"
  how
    step touch: notify where
}

campaign clean {
  who city = "上海" and tagged "vip"
  when daily at 10:00
  where push template "ok.j2"
  how
    step touch: notify where
}
'''


def _workspace(root: Path, data_url: str) -> Path:
    root.mkdir(parents=True)
    for name in ("schema.camp", "segments.camp"):
        shutil.copy(CAMPAIGNS / name, root / name)
    (root / "camp.toml").write_text(
        '[workspace]\nname = "t"\ntimezone = "Asia/Shanghai"\ncurrency = "CNY"\n'
        f'[data]\nurl = "{data_url}"\n[ledger]\nurl = "duckdb:///ledger.duckdb"\n', encoding="utf-8")
    (root / "templates").mkdir()
    (root / "templates" / "ok.j2").write_text("hi {{ user.name }}", encoding="utf-8")
    (root / "c.camp").write_text(CAMPAIGN, encoding="utf-8")
    return root


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def shop(request, tmp_path_factory):
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('shop') / 'shop.duckdb'}"
        schema = None
    else:
        wh = require_postgres()
        schema = f"camp_literals_{os.getpid()}"
        wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        wh.execute(f'CREATE SCHEMA "{schema}"')
        wh.close()
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    make_shop(url, users=1000, seed=3)
    root = _workspace(tmp_path_factory.mktemp("ws") / "ws", url)
    yield root, url
    if schema is not None:
        wh = connect(PG_URL)
        wh.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        wh.close()


def _program(root: Path):
    result = check_workspace(load_workspace(root))
    assert not result.errors, result.errors
    return result.program


def _truth(url: str, sql: str) -> list[tuple]:
    wh = connect(url)
    try:
        return wh.rows(sql)
    finally:
        wh.close()


def test_probes_follow_segments_and_excludes(shop):
    program = _program(shop[0])
    found = {(p.kind, p.name): v for p, v in probes(program, program.campaigns["c"]).items()}
    assert found == {("field", "city"): ["Shanghai", "北京"], ("tag", "tags"): ["vip", "VIPP"],
                     ("field", "gender"): ["unknown"], ("label", "lifecycle"): ["silent", "churned"]}


def test_absent_values_are_named_with_the_most_common_ones(shop):
    root, url = shop
    program = _program(root)
    wh = connect(url)
    try:
        warnings = absent_literals(program, program.campaigns["c"], wh.rows, wh.dialect, AS_OF)
        clean = absent_literals(program, program.campaigns["clean"], wh.rows, wh.dialect, AS_OF)
    finally:
        wh.close()
    cities = _truth(url, "SELECT city, COUNT(*) AS n FROM users WHERE city IS NOT NULL GROUP BY city "
                         "ORDER BY n DESC, city LIMIT 6")
    tags = _truth(url, "SELECT tag, COUNT(DISTINCT user_id) AS n FROM user_tags GROUP BY tag ORDER BY n DESC, tag "
                       "LIMIT 6")
    top = ", ".join(f"{c} ({n:,})" for c, n in cities[:5])
    assert warnings == [
        f"campaign c: no user has city = \"Shanghai\"; most common: {top}" + (", …" if len(cities) > 5 else ""),
        "campaign c: no user is tagged \"VIPP\"; most common tags: "
        + ", ".join(f"{t} ({n:,})" for t, n in tags[:5]) + (", …" if len(tags) > 5 else ""),
    ]
    assert "上海" in top and "北京" in top
    assert clean == []


def test_an_absent_label_lists_the_labels_users_have(shop):
    root, url = shop
    program = _program(root)
    # Before the shop opened nobody has an order: nobody is silent or churned, everyone is potential.
    early = datetime(2000, 1, 1, tzinfo=UTC)
    wh = connect(url)
    try:
        warnings = [w for w in absent_literals(program, program.campaigns["c"], wh.rows, wh.dialect, early)
                    if "lifecycle" in w]
    finally:
        wh.close()
    users = _truth(url, "SELECT COUNT(*) FROM users")[0][0]
    assert warnings == [f"campaign c: no user is lifecycle = {label} as of {early.isoformat()}; labels: "
                        f"potential ({users:,})" for label in ("silent", "churned")]


def test_camp_audience_prints_the_warning_on_stderr(shop):
    root, _ = shop
    out = subprocess.run([str(Path(sys.executable).parent / "camp"), "audience", "c.camp", "--as-of",
                          "2026-12-01T10:00"], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "campaign c," in out.stdout and "warning" not in out.stdout
    lines = [line for line in out.stderr.splitlines() if line.startswith("camp audience: warning: ")]
    assert len(lines) == 2 and 'no user has city = "Shanghai"; most common: ' in lines[0], out.stderr
    assert "上海 (" in lines[0] and 'no user is tagged "VIPP"' in lines[1]
