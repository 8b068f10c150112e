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
    target, clicks = c["targets"]
    assert target["metric"] == "conversion" and target["status"] in ("met", "missed")
    assert clicks["metric"] == "click_rate" and clicks["actual"] == total["clicks"]["rate"]
    assert 0 < total["clicks"]["clicked"] < total["reached"]
    assert total["clicks"]["rate"]["value"] == total["clicks"]["clicked"] / total["reached"]
    assert clicks["status"] == ("met" if total["clicks"]["rate"]["value"] >= 0.1 else "missed")
    assert c["objective"] == "reactivation"
    recall, new = total["recall"], total["new_customers"]
    assert recall["ordered"] == total["converted"]  # the goal is any(orders): recall is the conversion
    assert recall["rate"] == total["conversion"] and recall["holdout_rate"] == total["holdout_conversion"]
    assert recall["uplift"] == total["uplift"]
    assert 0 < new["count"] < recall["ordered"] and new["holdout_count"] <= recall["holdout_ordered"]
    assert new["rate"]["value"] == new["count"] / total["treated"]
    assert new["rate"]["low"] < new["rate"]["value"] < new["rate"]["high"]
    assert new["uplift"]["value"] == new["rate"]["value"] - new["holdout_rate"]["value"]
    assert sum(a["new_customers"]["count"] for a in c["arms"]) == new["count"]

    r = camp("report", ".", "--campaign", CAMPAIGN, "--as-of", as_of, cwd=ws)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"{CAMPAIGN} as of" in out and "goal window 14d" in out and "window open" not in out
    for word in ("treated A", "treated B", "holdout", "uplift 95% CI", "ROI", "target conversion >= 8.00%",
                 "recall uplift", "new customers", "new uplift"):
        assert word in out, word
    assert f"{total['treated']:,}" in out and f"{total['holdout']:,}" in out
    assert f"{new['rate']['value'] * 100:.2f}%" in out and f"{recall['rate']['value'] * 100:.2f}%" in out

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
