"""`camp run FOLDER` runs only the campaigns due at the as-of time and says why it skipped the others
(issue 11); `--all` runs every campaign as before."""

from __future__ import annotations

import json
import shutil

from runtime.demo_data import make_shop
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp

AS_OF = "2026-12-01T10:30:00+08:00"  # a Tuesday
DUE = {"winback_high_value", "birthday_gift", "engagement_digest"}  # daily 10:00, daily 09:00, daily 08:30/19:00


def _runs_in(stdout: str) -> set[str]:
    return {line.split()[2] for line in stdout.splitlines() if line.startswith("camp run: ") and " @ " in line}


def _skipped(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("camp run: skipped "):
            name, _, why = line.removeprefix("camp run: skipped ").partition(": ")
            out[name] = why
    return out


def test_folder_runs_only_what_is_due(tmp_path, prefect_env):
    ws = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb", "*.wal"))
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", 300, seed=5)

    dry = camp("run", ".", "--dry-run", "--as-of", AS_OF, "--no-progress", cwd=ws, env=prefect_env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert _runs_in(dry.stdout) == DUE
    # occurrences are shown on the campaign's wall clock, with the stored UTC key
    assert "camp run: winback_high_value / touch @ 2026-12-01 10:00 Asia/Shanghai (2026-12-01T02:00Z)" in dry.stdout
    skipped = _skipped(dry.stdout)
    assert set(skipped) == {"first_order_activation", "beijing_loyal_feedback", "silent_recall", "share_red_packet",
                            "multi_tag_coupon", "important_value_thanks"}
    assert skipped["multi_tag_coupon"].startswith("missed: it last fired at 2026-11-11 00:00 Asia/Shanghai")
    assert skipped["beijing_loyal_feedback"] == "not due until 2026-12-05 10:00 Asia/Shanghai"
    assert skipped["first_order_activation"].startswith("runs on `orders` events")
    assert skipped["silent_recall"] == "not due: its schedule has not fired yet"  # Mondays and Thursdays 11:00

    real = camp("run", ".", "--as-of", AS_OF, "--no-progress", cwd=ws, env=prefect_env)
    assert real.returncode == 0, real.stdout + real.stderr
    assert _runs_in(real.stdout) == DUE
    # the same day, ten minutes on: every due occurrence ran to the end, none is run again
    again = camp("run", ".", "--as-of", "2026-12-01T10:40:00+08:00", "--no-progress", cwd=ws, env=prefect_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _runs_in(again.stdout) <= {"winback_high_value"}  # only to release what quiet hours held, if any
    for name in DUE - _runs_in(again.stdout):
        assert _skipped(again.stdout)[name].startswith("already ran its occurrence of 2026-12-01")
    runs = json.loads(camp("runs", "--json", cwd=ws, env=prefect_env).stdout)
    assert {r["campaign"] for r in runs} == DUE

    everything = camp("run", ".", "--all", "--dry-run", "--as-of", AS_OF, "--no-progress", cwd=ws, env=prefect_env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert len(_runs_in(everything.stdout)) == 9 and not _skipped(everything.stdout)
