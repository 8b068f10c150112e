"""`camp report --format html` opened in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): the
page loads with no console error and no request outside itself, its three charts per campaign are drawn with
the report's numbers (bars, funnel, uplift interval), a Chinese campaign name shows as written, and a screenshot
is taken. Under CI=true a missing Chromium fails the test; elsewhere it is skipped."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from camp.report_html import html_of
from tests.cli.test_report import _workspace
from tests.runtime.conftest import camp
from tests.runtime.measure_data import CAMPAIGN, T0

CHROMIUM = os.environ.get("CAMP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        msg = f"Chromium is needed to test the HTML report and is not at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _open(html_path: Path, shot: Path) -> dict:
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            outside: list[str] = []
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith("file://") else None)
            page.goto(html_path.as_uri(), wait_until="load")
            drawn = page.evaluate("""() => {
                const size = el => { const b = el.getBoundingClientRect(); return [b.width, b.height]; };
                const charts = [...document.querySelectorAll('svg.chart')];
                return {
                  charts: charts.map(size),
                  bars: [...document.querySelectorAll('svg.chart rect.sent, svg.chart rect.conv')]
                        .filter(r => r.getBoundingClientRect().height > 0).length,
                  funnel: [...document.querySelectorAll('svg.chart rect.funnel')].map(r => r.getBoundingClientRect().width),
                  estimates: document.querySelectorAll('svg.chart circle.est').length,
                  intervals: document.querySelectorAll('svg.chart line.ci').length,
                  headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
                  text: document.body.innerText,
                };
            }""")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    drawn["problems"], drawn["outside"] = problems, outside
    return drawn


def test_the_html_report_draws_its_charts_in_chromium(tmp_path):
    ws = _workspace(tmp_path)
    as_of = (T0 + timedelta(days=30)).isoformat()
    r = camp("report", ".", "--campaign", CAMPAIGN, "--as-of", as_of, "--format", "html", cwd=ws)
    assert r.returncode == 0, r.stderr
    page = tmp_path / "report.html"
    page.write_text(r.stdout, encoding="utf-8")
    doc = json.loads(camp("report", ".", "--campaign", CAMPAIGN, "--as-of", as_of, "--format", "json", cwd=ws).stdout)
    total = doc["campaigns"][0]["total"]
    shot = tmp_path / "report.png"
    drawn = _open(page, shot)
    assert drawn["problems"] == [] and drawn["outside"] == [], (drawn["problems"], drawn["outside"])
    assert len(drawn["charts"]) == 3 and all(w > 100 and h > 50 for w, h in drawn["charts"]), drawn["charts"]
    days = doc["campaigns"][0]["daily"]
    assert drawn["bars"] == sum((d["reached"] > 0) + (d["converted"] > 0) for d in days)  # two bars a day
    assert len(drawn["funnel"]) == 4 and all(w > 0 for w in drawn["funnel"])  # sent, clicked, redeemed, ordered
    assert total["clicks"]["clicked"] > 0 and "clicked / reached" in drawn["text"]
    assert drawn["funnel"][0] == max(drawn["funnel"])  # sent is the widest
    assert drawn["estimates"] == 2 and drawn["intervals"] == 6  # arms A and B, each with its interval
    assert f"{total['treated']:,}" in drawn["text"] and total["sales"] in drawn["text"]
    new, recall = total["new_customers"], total["recall"]  # a reactivation campaign: recall, then new customers
    assert f"recall rate, treated\t{recall['ordered']:,} ({recall['rate']['value'] * 100:.1f}%" in drawn["text"]
    assert f"new customers, treated\t{new['count']:,} ({new['rate']['value'] * 100:.1f}%" in drawn["text"]
    assert drawn["text"].index("recall rate") < drawn["text"].index("treated (reached)") < drawn["text"].index(
        "new customers, treated")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_page_with_a_chinese_name_and_no_holdout_renders_and_escapes(tmp_path):
    """No holdout: no uplift to draw, said in words; names are escaped, never markup."""
    doc = {"version": 1, "as_of": "2026-12-31T00:00:00+00:00", "currency": "CNY", "margin": None, "campaigns": [{
        "campaign": "双十一预热<script>alert(1)</script>", "entry_step": "触达", "goal_window": "7d",
        "holdout_share": "0", "window_open": True,
        "steps": [{"step": "触达", "arm": None, "assigned": 10, "reached": 8, "holdout": 0, "suppressed": 2,
                   "cost": "0.40"}],
        "total": {"arm": None, "treated": 10, "reached": 8, "converted": 1, "holdout": 0, "holdout_converted": 0,
                  "conversion": {"value": 0.1, "low": 0.02, "high": 0.4}, "holdout_conversion": {"value": None},
                  "uplift": {"value": None}, "relative_uplift": {"value": None}, "incremental_conversions": None,
                  "orders": 1, "sales": "88.00", "aov": "88.00", "revenue": "88.00", "incremental_sales": None,
                  "coupons": {"issued": 0, "redeemed": 0, "redemption_rate": {"value": None}, "discounts": "0.00"},
                  "send_cost": "0.40", "subsidy": "0.40", "cost_per_incremental_conversion": None, "roi": None,
                  "open_windows": 10},
        "arms": [], "daily": [{"day": "2026-12-30", "treated": 10, "reached": 8, "converted": 1, "holdout": 0,
                               "holdout_converted": 0, "sales": "88.00"}], "targets": []}]}
    page = tmp_path / "r.html"
    page.write_text(html_of(doc), encoding="utf-8")
    drawn = _open(page, tmp_path / "r.png")
    assert drawn["problems"] == [] and drawn["outside"] == []
    assert drawn["headings"] == ["双十一预热<script>alert(1)</script>"]  # shown as text, not run
    assert "no uplift" in drawn["text"] and "window open" in drawn["text"]
    assert len(drawn["charts"]) == 2 and drawn["bars"] == 2 and len(drawn["funnel"]) == 2  # no coupons: no redeemed
