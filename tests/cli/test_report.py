"""`camp report` on a small workspace (the bundled campaigns, a synthetic ledger and shop): the text tables and
the JSON document; it never imports Prefect."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

from runtime.warehouse import connect, create_tables
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp
from tests.runtime.measure_data import CAMPAIGN, T0, load_world, make_world
from tests.runtime.steps import program_of


def _workspace(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb"))
    with open(ws / "camp.toml", "a", encoding="utf-8") as f:
        f.write('\n[report]\nmargin = "30%"\n')
    _, program = program_of(ws)
    wh = connect(f"duckdb:///{ws / 'shop.duckdb'}")
    create_tables(wh, program.schema)
    lg = load_world(make_world(3, 600, 0.2, 0.05, holdout=0.25, arms=("A", "B")), f"duckdb:///{ws / 'ledger.duckdb'}",
                    wh)
    lg.close()
    wh.close()
    return ws


def test_report_json_and_text(tmp_path):
    ws = _workspace(tmp_path)
    as_of = (T0 + timedelta(days=30)).isoformat()
    r = camp("report", ".", "--campaign", CAMPAIGN, "--as-of", as_of, "--format", "json", cwd=ws)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["version"], doc["currency"], doc["margin"]) == (1, "CNY", "0.3")
    [c] = doc["campaigns"]
    assert (c["campaign"], c["entry_step"], c["goal_window"], c["window_open"]) == (CAMPAIGN, "touch", "14d", False)
    total = c["total"]
    assert total["treated"] + total["holdout"] == 600
    assert [a["arm"] for a in c["arms"]] == ["A", "B"]
    assert sum(a["treated"] for a in c["arms"]) == total["treated"]
    for key in ("sales", "aov", "revenue", "incremental_sales", "send_cost", "subsidy", "roi"):
        assert isinstance(total[key], str) and Decimal(total[key]) == Decimal(total[key])  # money as Decimal text
    assert Decimal(total["subsidy"]) == Decimal(total["send_cost"]) + Decimal(total["coupons"]["discounts"])
    low, value, high = (total["uplift"][k] for k in ("low", "value", "high"))
    assert low < value < high
    assert {s["step"] for s in c["steps"]} == {"touch", "reminder"}
    assert [d["day"] for d in c["daily"]] == ["2026-12-01", "2026-12-02"]  # the world's two occurrences
    assert sum(d["treated"] for d in c["daily"]) == total["treated"]
    assert sum(Decimal(d["sales"]) for d in c["daily"]) == Decimal(total["sales"])
    [target] = c["targets"]
    assert target["metric"] == "conversion" and target["status"] in ("met", "missed")

    r = camp("report", ".", "--campaign", CAMPAIGN, "--as-of", as_of, cwd=ws)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"{CAMPAIGN} as of" in out and "goal window 14d" in out and "window open" not in out
    for word in ("treated A", "treated B", "holdout", "uplift 95% CI", "ROI", "target conversion >= 8.00%"):
        assert word in out, word
    assert f"{total['treated']:,}" in out and f"{total['holdout']:,}" in out

    early = (T0 + timedelta(days=5)).isoformat()
    r = camp("report", ".", "--campaign", CAMPAIGN, "--as-of", early, cwd=ws)
    assert r.returncode == 0 and "window open for" in r.stdout


def test_unknown_campaign_is_a_usage_error(tmp_path):
    ws = _workspace(tmp_path)
    r = camp("report", ".", "--campaign", "winback_high_valu", cwd=ws)
    assert r.returncode == 2
    assert "winback_high_value" in r.stderr


def test_report_never_imports_prefect():
    code = "import sys, camp.report, runtime.measure; sys.exit('prefect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
