"""A campaign typed with full-width punctuation and curly quotes checks and runs like the ASCII one."""

from __future__ import annotations

import re

from runtime.demo_data import make_shop
from tests.dsl.test_fullwidth import widen
from tests.runtime.conftest import camp, make_workspace
from tests.runtime.test_run import CAMPAIGNS, TEMPLATES

AS_OF = "2026-12-01T10:00+08:00"


def _numbers(out: str) -> list[str]:
    """The run's report without what differs between two workspaces (paths, durations)."""
    return [re.sub(r"\d+(\.\d+)?\s*(ms|s)\b", "", line) for line in out.splitlines() if not re.search(r"/tmp/", line)]


def test_full_width_campaign_checks_and_dry_runs_like_the_ascii_one(tmp_path, prefect_env):
    ascii_text = CAMPAIGNS["coupon.camp"]
    wide_text = widen(ascii_text)
    assert "：" in wide_text and "，" in wide_text and "（" not in ascii_text and "“" in wide_text
    out = {}
    for kind, text in (("ascii", ascii_text), ("wide", wide_text)):
        root = make_workspace(tmp_path / kind, {"coupon.camp": text}, templates=TEMPLATES)
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=4)
        check = camp("check", ".", cwd=root, env=prefect_env)
        assert check.returncode == 0, check.stdout + check.stderr
        dry = camp("run", "coupon.camp", "--as-of", AS_OF, "--dry-run", "--no-progress", cwd=root, env=prefect_env)
        assert dry.returncode == 0, dry.stderr
        assert "dry run, nothing is sent or written" in dry.stdout and "to send" in dry.stdout
        out[kind] = dry.stdout
    assert _numbers(out["wide"]) == _numbers(out["ascii"]), (out["ascii"], out["wide"])
