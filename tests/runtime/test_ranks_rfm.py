"""RFM end to end (issue 14): the bundled `rfm_recency`, `rfm_frequency` and `rfm_monetary` quintiles and a
percentile threshold in a campaign's WHO, run by `camp audience` and `camp run --dry-run` on the demo shop in
DuckDB and PostgreSQL, give the users an independent pandas/numpy computation from the raw tables gives."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime.demo_data import make_shop
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp, pg_schema

AS_OF = "2026-12-01T15:00:00+08:00"  # in the 10:00 Shanghai occurrence of a daily campaign
OCCURRENCE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # what both commands evaluate the audience at
CAMPAIGN = """campaign rfm_thanks "RFM 重要价值回馈" {
  why retention
    goal any(orders) within 14d
  who segment rfm_champions
    and sum(orders.amount within 365d) >= percentile(50%, sum(orders.amount within 365d) among any(orders within 365d))
    exclude tagged "complained"
  when daily at 10:00 from 2026-11-01 to 2026-12-31
  where push template "rfm/push.j2"
  how
    step touch: notify where
}
"""


@pytest.fixture(params=["duckdb", "postgres"])
def shop(request, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb*"))
    (ws / "rfm.camp").write_text(CAMPAIGN, encoding="utf-8")
    (ws / "templates" / "rfm").mkdir()
    (ws / "templates" / "rfm" / "push.j2").write_text("{{ user.name | default('会员') }}，感谢您一年来的支持！",
                                                      encoding="utf-8")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "CAMP_LEDGER_URL": f"duckdb:///{tmp_path}/l.db"}
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
        make_shop(url, 3000, seed=7)
        yield ws, url, {**env, "CAMP_DATA_URL": url}
        return
    with pg_schema(f"camp_rfm_{os.getpid()}") as url:
        make_shop(url, 3000, seed=7)
        yield ws, url, {**env, "CAMP_DATA_URL": url}


def _ntile(values: pd.Series, buckets: int) -> pd.Series:
    """SQL's NTILE by numpy: order by value then user id as text; np.array_split gives the first len % buckets
    parts one more member, as NTILE does."""
    order = sorted(values.index, key=lambda uid: (values[uid], str(uid)))
    out = {}
    for i, part in enumerate(np.array_split(np.array(order, dtype=object), buckets), start=1):
        out.update({uid: i for uid in part})
    return pd.Series(out)


def _expected(url: str) -> tuple[set, set]:
    wh = connect(url)
    try:
        users = pd.DataFrame(wh.rows("SELECT user_id FROM users"), columns=["user_id"])
        orders = pd.DataFrame(wh.rows("SELECT user_id, created_at, amount FROM orders"),
                              columns=["user_id", "created_at", "amount"])
        tagged = {u for (u,) in wh.rows("SELECT user_id FROM user_tags WHERE tag = 'complained'")}
    finally:
        wh.close()
    times = pd.to_datetime(orders["created_at"], utc=True)
    start = pd.Timestamp(OCCURRENCE - timedelta(days=365))  # Shanghai has no daylight saving: 365 days of 24 h
    year = orders[(times >= start) & (times < pd.Timestamp(OCCURRENCE))].assign(t=times)
    per_user = year.groupby("user_id").agg(n=("amount", "size"), spent=("amount", lambda a: a.fillna(0).sum()),
                                           last=("t", "max"))
    r, f, m = (_ntile(per_user[c], 5) for c in ("last", "n", "spent"))
    champions = {u for u in per_user.index if r[u] >= 4 and f[u] >= 4 and m[u] >= 4}
    median = float(np.percentile(per_user["spent"].astype(float), 50, method="linear"))  # percentile_cont
    matched = {u for u in champions if float(per_user["spent"][u]) >= median - 1e-9}
    assert matched <= set(users["user_id"])
    return matched, matched & tagged


def _count(text: str, label: str) -> int:
    found = re.search(rf"^  {label}\s+([\d,]+)", text, re.M)
    assert found, text
    return int(found.group(1).replace(",", ""))


def test_rfm_campaign_matches_pandas_in_camp_audience_and_camp_run(shop):
    ws, url, env = shop
    matched, excluded = _expected(url)
    assert 20 <= len(matched) <= 600, len(matched)  # a real selection: neither nobody nor everybody
    a = camp("audience", "rfm.camp", "--as-of", AS_OF, "--count", cwd=ws, env=env)
    assert a.returncode == 0, a.stdout + a.stderr
    assert "2026-12-01T10:00:00+08:00" in a.stdout
    assert (_count(a.stdout, "matched"), _count(a.stdout, "excluded")) == (len(matched), len(excluded))
    r = camp("run", "rfm.camp", "--as-of", AS_OF, "--dry-run", "--no-progress", cwd=ws, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _count(r.stdout, "audience") == len(matched) - len(excluded)


def test_rfm_labels_partition_the_buyers_into_quintiles(shop):
    """Each of R, F and M puts a fifth of the year's buyers (NTILE's sizes) in each label, no_order the rest."""
    ws, url, env = shop
    from compiler import ir as I
    from compiler.check import check_workspace
    from compiler.sql import AudienceSQL
    from compiler.workspace import load_workspace

    program = check_workspace(load_workspace(Path(ws))).program
    wh = connect(url)
    try:
        users = wh.rows("SELECT COUNT(*) FROM users")[0][0]
        buyers = wh.rows(f"SELECT COUNT(DISTINCT user_id) FROM orders WHERE created_at >= "
                         f"TIMESTAMPTZ '{(OCCURRENCE - timedelta(days=365)).isoformat()}' AND created_at < "
                         f"TIMESTAMPTZ '{OCCURRENCE.isoformat()}'")[0][0]
        sizes = [buyers // 5 + (1 if i < buyers % 5 else 0) for i in range(5)]
        for dim, prefix in (("rfm_recency", "r"), ("rfm_frequency", "f"), ("rfm_monetary", "m")):
            got = []
            for k in (5, 4, 3, 2, 1):
                c = AudienceSQL(program, OCCURRENCE, wh.dialect)
                got.append(len(wh.rows(c.sql(c.condition(I.LabelIs(dim, (f"{prefix}{k}",))), pretty=False))))
            c = AudienceSQL(program, OCCURRENCE, wh.dialect)
            rest = len(wh.rows(c.sql(c.condition(I.LabelIs(dim, ("no_order",))), pretty=False)))
            assert got == sizes[::-1], (dim, got, sizes)
            assert sum(got) + rest == users, dim
    finally:
        wh.close()
