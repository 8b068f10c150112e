"""`camp simulate` as a process: bad dates and a reversed period are usage errors (exit 2, one clear line, no
traceback); `--format html` is one self-contained page that headless Chromium opens with no console error and no
request outside itself, its charts drawn (a screenshot is taken)."""

from __future__ import annotations

import json

import pytest

from runtime.demo_data import make_shop
from tests.cli.test_report_html import CHROMIUM, _open
from tests.runtime.conftest import camp
from tests.runtime.sim_workspace import DAYS, sim_workspace


@pytest.mark.parametrize(("start", "end", "says"), [
    ("2026-11-28", "2026-11-24", "is not after --from"),
    ("2026-13-01", "2026-12-02", "is not a date like"),
    ("yesterday", "2026-12-02", "is not a date like"),
    ("2026-11-24T10:00", "2026-11-24T10:00", "is not after --from"),
    ("2026-01-01", "2027-12-31", "at most 366"),
])
def test_bad_periods_are_usage_errors(tmp_path, start, end, says):
    root = sim_workspace(tmp_path / "ws")
    out = camp("simulate", str(root), "--from", start, "--to", end, cwd=root)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    assert not (root / "ledger.duckdb").exists()


def test_the_html_page_opens_in_chromium(tmp_path):
    assert CHROMIUM
    root = sim_workspace(tmp_path / "ws")
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=1)
    page = tmp_path / "sim.html"
    out = camp("simulate", str(root), "--from", DAYS[0], "--to", DAYS[-1], "--format", "html", "--out", str(page),
               cwd=root, timeout=600)
    assert out.returncode == 0, out.stderr
    data = camp("simulate", str(root), "--from", DAYS[0], "--to", DAYS[-1], "--format", "json", cwd=root, timeout=600)
    doc = json.loads(data.stdout)
    drawn = _open(page, tmp_path / "sim.png")
    assert drawn["problems"] == [] and drawn["outside"] == []
    assert (tmp_path / "sim.png").stat().st_size > 10_000
    assert len(drawn["charts"]) >= 3 and all(w > 0 and h > 0 for w, h in drawn["charts"])
    assert "Sends per day" in drawn["headings"] and "Contact pressure" in drawn["headings"]
    assert "promo_a" in drawn["text"] and "exclusive:g held by" in drawn["text"]
    assert f"max {doc['pressure']['per_7_days']['max']}" in drawn["text"]
