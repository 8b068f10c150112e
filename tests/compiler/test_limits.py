"""Limits the checker knows: each value that passed `camp check` and then failed in compile or at run time
(issue 10) is now a located error, and the value just inside the limit checks clean, compiles for every
dialect, and dry-runs against a real DuckDB shop (compile_and_dry_run, shared with the fuzz tests)."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from compiler.check import check_workspace
from compiler.step_plan import build_plan
from compiler.workspace import Workspace, load_workspace
from tests.conftest import CAMPAIGNS
from tests.test_fuzz import compile_and_dry_run

CASE = """campaign limits_case {{
  who {who}
  when {when}
  where push template "limits/push.j2"
  how
    step touch: notify where
  how much
    {how_much}
}}
"""
AS_OF = datetime(2026, 12, 4, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
# lines of the bundled camp.toml: an appended "\n[channels.x]\nkind = ..." puts `kind` on BUNDLED_TOML + 3
BUNDLED_TOML = len((CAMPAIGNS / "camp.toml").read_text(encoding="utf-8").splitlines())


def workspace(tmp: Path, text: str = "", toml_extra: str = "", name: str = "case.camp") -> Workspace:
    root = tmp / "ws"
    if not root.exists():
        shutil.copytree(CAMPAIGNS, root, ignore=shutil.ignore_patterns("*.duckdb", "*.wal"))
        (root / "templates" / "limits").mkdir()
        (root / "templates" / "limits" / "push.j2").write_text("{{ user.name }}，你好", encoding="utf-8")
    if toml_extra:
        with (root / "camp.toml").open("a", encoding="utf-8") as f:
            f.write(toml_extra)
    if text:
        (root / name).write_text(text, encoding="utf-8")
    ws = load_workspace(root)
    assert isinstance(ws, Workspace)
    return ws


def case(who: str = 'city = "北京"', when: str = "daily at 10:00", how_much: str = "priority 1") -> str:
    return CASE.format(who=who, when=when, how_much=how_much)


def errors(ws: Workspace) -> list:
    return check_workspace(ws).errors


def located(ws: Workspace, code: str, line: int, at: str | None = None):
    """The first `code` error, in the case file or camp.toml on `line` (and starting at the text `at`)."""
    errs = errors(ws)
    hits = [d for d in errs if d.code == code]
    assert hits, [(d.code, d.message) for d in errs]
    d = hits[0]
    assert d.file.endswith(("case.camp", "camp.toml")) and d.span.line == line, d
    if at is not None:
        source = (ws.root / Path(d.file).name).read_text(encoding="utf-8").splitlines()[line - 1]
        assert d.span.column == source.index(at) + 1, (d, source)
    assert d.hints and d.hints[0], d
    return d


def runs(ws: Workspace) -> int:
    """Clean, compiles for every dialect, and dry-runs: returns how many plans ran."""
    result = check_workspace(ws)
    assert result.errors == [], [(d.code, d.message) for d in result.errors]
    name = next(m.path for m in ws.modules if m.path.endswith("case.camp"))
    return compile_and_dry_run(ws, result, name)


# ---------------------------------------------------------------- durations
def test_window_of_99999999_days_is_located(tmp_path):
    d = located(workspace(tmp_path, case(who="any(orders within 99999999d)")), "E413", 2, "99999999d")
    assert "100 years" in d.message


def test_window_of_100_years_compiles_and_runs(tmp_path):
    assert runs(workspace(tmp_path, case(who="any(orders within 36525d) or any(visits within 1200mo)"))) == 1


@pytest.mark.parametrize("dur", ["36526d", "1201mo", "5218w", "876601h", "52596001m"])
def test_every_unit_is_bounded(tmp_path, dur):
    located(workspace(tmp_path, case(who=f"any(orders within {dur})")), "E413", 2)


def test_cap_window_and_step_delay_are_bounded(tmp_path):
    located(workspace(tmp_path, case(how_much="cap 1 message per user per 99999999d")), "E413", 8)


# ---------------------------------------------------------------- dates
def test_year_one_is_located(tmp_path):
    d = located(workspace(tmp_path, case(who="registered >= 0001-01-01")), "E414", 2, "0001-01-01")
    assert "1900-01-01" in d.message and "2999-12-31" in d.message


def test_first_and_last_supported_dates_compile_and_run(tmp_path):
    who = "registered >= 1900-01-01 and birthday <= 2999-12-31"
    assert runs(workspace(tmp_path, case(who=who, when="daily at 10:00 from 1900-01-01 to 2999-12-31"))) == 1


def test_dates_in_when_are_bounded(tmp_path):
    located(workspace(tmp_path, case(when="daily at 10:00 until 3000-01-01")), "E414", 3)
    located(workspace(tmp_path, case(when="once at 1899-12-31 10:00")), "E414", 3)


# ---------------------------------------------------------------- numbers and money
def test_budget_of_10_to_the_40_is_located(tmp_path):
    d = located(workspace(tmp_path, case(how_much="budget " + "1" + "0" * 40 + " CNY total")), "E412", 8, "1000")
    assert "DECIMAL(18,4)" in d.hints[0]


def test_largest_budget_compiles_and_runs(tmp_path):
    assert runs(workspace(tmp_path, case(how_much="budget 99999999999999.9999 CNY total, 99999999999999 CNY per day"
                                          ))) == 1


def test_cost_of_10_to_the_22_is_located(tmp_path):
    located(workspace(tmp_path, case(how_much="cost push " + "1" + "0" * 22 + " CNY")), "E412", 8)
    d = located(workspace(tmp_path, case(how_much="cost push 1000000 CNY")), "E412", 8)
    assert "per recipient" in d.hints[0] or "1,000,000" in d.message


def test_largest_cost_is_spent_by_a_real_run(tmp_path):
    """The dry run passed with 10^22 and the real run failed on the ledger's DECIMAL(18,4): run it for real."""
    from runtime import engine
    from runtime.context import Run
    from runtime.demo_data import make_shop
    from runtime.ledger import open_ledger
    from runtime.recover import recover
    from runtime.release import release
    from runtime.snapshot import snapshot
    from runtime.summary import summarize

    ws = workspace(tmp_path, case(how_much="cost push 999999.9999 CNY"))
    assert runs(ws) == 1
    program = check_workspace(ws).program
    plan = build_plan(program, program.campaigns["limits_case"], AS_OF, "duckdb", ws.template_dir)
    data = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    make_shop(data, users=300)
    ledger = open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    run = Run(plan, ledger, data, AS_OF, False, {})
    try:
        engine.start(run)
        lo, hi = snapshot(run)
        recover(run)
        release(run)
        engine.send_batch(run, lo, hi)
        summary = summarize(run, hi - lo)
        engine.finish(run, summary)
    finally:
        run.close()
    cost = Decimal(str(summary["cost"]))
    assert summary["statuses"].get("sent", 0) > 0 and cost > 0, summary
    assert cost % Decimal("999999.9999") == 0, cost  # whole sends, every one stored at its exact cost
    ledger.close()


def test_number_past_10_to_the_18_is_located(tmp_path):
    located(workspace(tmp_path, case(who="count(orders) >= 1" + "0" * 18)), "E411", 2)
    located(workspace(tmp_path, case(who="count(orders) >= 0.00000000001")), "E411", 2)
    located(workspace(tmp_path, case(how_much="cap 2147483648 messages per user per 7d")), "E411", 8)


def test_largest_number_compiles_and_runs(tmp_path):
    who = "count(orders) < 999999999999999999 and sum(visits.seconds) < 99999999.9999999999"
    assert runs(workspace(tmp_path, case(who=who, how_much="cap 2147483647 messages per user per 7d"))) == 1


def test_coupon_values_fit_the_coupon_columns(tmp_path):
    text = case(how_much="priority 1").replace("where push", "what coupon c1 { value 10.005 CNY }\n  where push")
    located(workspace(tmp_path, text), "E412", 4)


# ---------------------------------------------------------------- cron
def test_cron_on_30_february_is_located(tmp_path):
    d = located(workspace(tmp_path, case(when='cron "0 0 30 2 *"')), "E415", 3, "cron")
    assert "never fires" in d.message


def test_cron_outside_the_date_range_is_located(tmp_path):
    located(workspace(tmp_path, case(when='cron "0 0 * 2 *" from 2026-03-01 to 2026-03-31')), "E415", 3)
    located(workspace(tmp_path, case(when="every monday at 10:00 from 2026-12-01 to 2026-12-06")), "E415", 3)


def test_cron_on_29_february_compiles_and_runs(tmp_path):
    assert runs(workspace(tmp_path, case(when='cron "0 0 29 2 *"'))) == 1
    assert runs(workspace(tmp_path, case(when="every monday at 10:00 from 2026-12-01 to 2026-12-07"))) == 1


# ---------------------------------------------------------------- digits and NUL
def test_arabic_indic_digits_in_a_time_are_located(tmp_path):
    errs = errors(workspace(tmp_path, case(when="daily at ١٠:٠٠")))
    assert errs and errs[0].code in ("E104", "E105"), errs
    assert (errs[0].span.line, errs[0].span.column) == (3, 17), errs[0]


def test_arabic_indic_digits_in_a_date_and_number_are_located(tmp_path):
    for who in ("registered >= ٢٠٢٦-٠١-٠١", "count(orders) >= ٣"):
        errs = errors(workspace(tmp_path, case(who=who)))
        assert errs and errs[0].code in ("E104", "E105") and errs[0].span.line == 2, errs


def test_nul_in_a_literal_is_located(tmp_path):
    located(workspace(tmp_path, case(who='city = "a\\u0000b"')), "E410", 2, '"a')
    located(workspace(tmp_path, case(who='tagged "vip\\u0000"')), "E410", 2)
    located(workspace(tmp_path, case().replace('"limits/push.j2"', '"x\\u0000.j2"')), "E410", 4)


# ---------------------------------------------------------------- segments
def test_sixteen_chained_segments_compile_small_and_fast(tmp_path):
    lines = ["segment s0 = count(orders within 90d) >= 1"]
    lines += [f"segment s{k} = s{k - 1} and s{k - 1}" for k in range(1, 17)]
    ws = workspace(tmp_path, "\n".join(lines) + "\n" + case(who="s16"))
    program = check_workspace(ws).program
    t0 = time.perf_counter()
    plan = build_plan(program, program.campaigns["limits_case"], AS_OF, "duckdb", ws.template_dir)
    took = time.perf_counter() - t0
    assert took < 5, f"compile took {took:.1f} s"
    assert len(plan.canonical()) < 50_000, len(plan.canonical())
    assert runs(ws) == 1
    from runtime.demo_data import make_shop
    from runtime.warehouse import connect

    data = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    make_shop(data, users=300)
    wh = connect(data, read_only=True)
    try:
        got = len(wh.execute(plan.recipients_sql).fetchall())
        program.campaigns["limits_case"].audience = program.segments["s0"].expr
        same = build_plan(program, program.campaigns["limits_case"], AS_OF, "duckdb", ws.template_dir)
        want = len(wh.execute(same.recipients_sql).fetchall())
    finally:
        wh.close()
    assert got == want > 0


# ---------------------------------------------------------------- camp.toml
def test_unimportable_channel_kind_is_located(tmp_path):
    toml = '\n[channels.push]\nkind = "no_such_package.sender:Push"\n'
    d = located(workspace(tmp_path, toml_extra=toml), "E003", BUNDLED_TOML + 3)
    assert "no_such_package.sender" in d.message


def test_missing_class_in_an_importable_module_is_located(tmp_path):
    toml = '\n[channels.push]\nkind = "json:NoSuchSender"\n'
    d = located(workspace(tmp_path, toml_extra=toml), "E003", BUNDLED_TOML + 3)
    assert "NoSuchSender" in d.message


def test_importable_channel_kind_is_clean(tmp_path):
    toml = '\n[channels.push]\nkind = "json:JSONDecoder"\n'
    assert errors(workspace(tmp_path, toml_extra=toml)) == []


def test_webhook_without_url_is_located(tmp_path):
    toml = '\n[channels.hook]\nkind = "webhook"\n\n[channels.hook.settings]\ntimeout = "soon"\n'
    ws = workspace(tmp_path, toml_extra=toml)
    d = located(ws, "E004", BUNDLED_TOML + 3)
    assert "`url`" in d.message
    assert any(e.code == "E004" and "timeout" in e.message and e.span.line == BUNDLED_TOML + 6 for e in errors(ws))


def test_webhook_with_url_is_clean(tmp_path):
    toml = '\n[channels.hook]\nkind = "webhook"\nsettings = { url = "http://127.0.0.1:9/hook", timeout = 2 }\n'
    assert errors(workspace(tmp_path, toml_extra=toml)) == []


def test_ledger_equal_to_data_is_located(tmp_path):
    ws = workspace(tmp_path)
    text = (ws.root / "camp.toml").read_text(encoding="utf-8").replace("ledger.duckdb", "./shop.duckdb")
    (ws.root / "camp.toml").write_text(text, encoding="utf-8")
    d = located(workspace(tmp_path), "E005", 11)
    assert "same database" in d.message


def test_a_postgres_ledger_may_share_the_warehouse(tmp_path):
    ws = workspace(tmp_path)
    url = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dshop"
    text = (ws.root / "camp.toml").read_text(encoding="utf-8")
    text = text.replace("duckdb:///shop.duckdb", url).replace("duckdb:///ledger.duckdb", url)
    (ws.root / "camp.toml").write_text(text, encoding="utf-8")
    assert url in text and not [e for e in errors(workspace(tmp_path)) if e.code == "E005"]


def test_builtin_kinds_are_the_runtimes():
    from compiler.runconfig import BUILTIN_KINDS
    from runtime.channels import _kinds

    assert set(BUILTIN_KINDS) == set(_kinds())


# ---------------------------------------------------------------- user facts inside an event query
@pytest.mark.parametrize("who", ["any(orders where segment sticky)", "any(orders where lifecycle = silent)",
                                 'any(orders where tagged "vip")', "any(orders where count(visits) > 1)",
                                 'any(orders where user.city = "北京")'])
def test_user_facts_inside_an_event_query_are_located(tmp_path, who):
    """These checked clean and then referred to the user row from the per-event pass (a Binder Error)."""
    located(workspace(tmp_path, case(who=who)), "E416", 2, who[len("any(orders where "):].split(" ")[0])


def test_event_fields_beside_a_segment_compile_and_run(tmp_path):
    assert runs(workspace(tmp_path, case(who="sticky and any(orders where amount > 10 CNY)"))) == 1
