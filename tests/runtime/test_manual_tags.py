"""Manual tags end to end, on DuckDB and PostgreSQL (warehouse and ledger on the same engine), through the `camp`
executable: `camp tag add|remove|show` with their audit rows, unknown ids that write nothing, CSV files with and
without a header, `--audience` taking a campaign's final users, audiences seeing manual tags at once, and
`camp tags` / `camp describe` equal to pandas on the raw tables."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from runtime.demo_data import make_shop
from runtime.ledger import open_ledger
from runtime.warehouse import connect
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import camp, pg_schema

AS_OF = "2026-12-01T10:00+08:00"
WHEN = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TAGGED = """campaign beta_invite "内测邀请" {
  why activation
    goal any(orders) within 14d
  who tagged "beta" and not tagged "complained"
  what coupon BETA5 { value 5 CNY  min_spend 50 CNY  usable 7d after issue }
  when once at 2026-12-01 10:00 tz "Asia/Shanghai"
  where push template "winback/push.j2"
  how
    step touch: give what, notify where
}
"""
SEGMENTS = """segment big_spender = sum(orders.amount within 30d) >= 500 CNY
segment beijing = city = "北京"

classify buyer_kind by first match {
  frequent   = count(orders within 90d) >= 3
  occasional = any(orders within 90d)
  dormant    = otherwise
}
"""


@pytest.fixture(params=["duckdb", "postgres"])
def world(request, tmp_path):
    """(workspace, env, warehouse URL, ledger URL): the bundled schema and winback campaign, a campaign of
    manual tags and simple segments, over a 300-user demo shop."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("camp.toml", "schema.camp", "segments.camp", "policy.camp", "winback.camp"):
        shutil.copy(CAMPAIGNS / name, ws / name)
    shutil.copytree(CAMPAIGNS / "templates", ws / "templates")
    (ws / "beta.camp").write_text(TAGGED, encoding="utf-8")
    (ws / "simple.camp").write_text(SEGMENTS, encoding="utf-8")

    def run(data: str, ledger: str):
        make_shop(data, users=300, seed=5)
        env = {**os.environ, "CAMP_DATA_URL": data, "CAMP_LEDGER_URL": ledger, "CAMP_USER": "alice"}
        return ws, env, data, ledger

    if request.param == "duckdb":
        yield run(f"duckdb:///{tmp_path / 'shop.duckdb'}", f"duckdb:///{tmp_path / 'ledger.duckdb'}")
        return
    with pg_schema(f"camp_tags_{os.getpid()}_{request.node.name.split('[')[0][-18:]}") as url:
        yield run(url, url)


def _camp(world, *args: str, user: str = "alice"):
    ws, env, _, _ = world
    return camp(*args, cwd=ws, env={**env, "CAMP_USER": user})


def _final(world) -> list[str]:
    out = _camp(world, "audience", "beta.camp", "--as-of", AS_OF, "--sample", "1000")
    assert out.returncode == 0, out.stderr
    sample = [line for line in out.stdout.splitlines() if line.strip().startswith("sample:")]
    return sample[0].split(":", 1)[1].replace("…", "").replace(",", " ").split() if sample else []


def _ledger_rows(world, sql: str) -> list[tuple]:
    lg = open_ledger(world[3])
    try:
        return lg.rows(sql)
    finally:
        lg.close()


def test_add_remove_show_with_their_audit_rows(world):
    assert _final(world) == []
    add = _camp(world, "tag", "add", "beta", "--users", "1, 2,3", "--reason", "first wave")
    assert add.returncode == 0, add.stderr
    assert "3 added, 0 already tagged" in add.stdout
    complained = {str(u) for (u,) in connect(world[2]).rows("SELECT user_id FROM user_tags WHERE tag = 'complained'")}
    assert sorted(_final(world), key=int) == [u for u in ("1", "2", "3") if u not in complained]  # at once
    again = _camp(world, "tag", "add", "beta", "--users", "3,4", user="bob")
    assert again.returncode == 0 and "1 added, 1 already tagged" in again.stdout, again.stdout + again.stderr
    assert _ledger_rows(world, "SELECT count(*) FROM camp_manual_tags WHERE tag = 'beta' AND user_id = '3'") == [(1,)]
    show = json.loads(_camp(world, "tag", "show", "beta", "--history", "--json").stdout)
    assert [h["user_id"] for h in show["holders"]] == ["1", "2", "3", "4"] and show["users"] == 4
    assert [(h["user_id"], h["added_by"]) for h in show["holders"]][2:] == [("3", "alice"), ("4", "bob")]
    trail = [(e["user_id"], e["action"], e["effect"], e["actor"], e["reason"], e["source"]) for e in show["history"]]
    assert trail == [("1", "add", "added", "alice", "first wave", "users"), ("2", "add", "added", "alice", "first wave", "users"),
                     ("3", "add", "added", "alice", "first wave", "users"), ("3", "add", "already", "bob", None, "users"),
                     ("4", "add", "added", "bob", None, "users")]
    assert len({e["change_id"] for e in show["history"]}) == 2
    remove = _camp(world, "tag", "remove", "beta", "--users", "1,5", "--reason", "left")
    assert remove.returncode == 0 and "1 removed, 1 did not have it" in remove.stdout, remove.stdout + remove.stderr
    assert "1" not in _final(world)
    text = _camp(world, "tag", "show", "beta", "--history")
    assert text.returncode == 0 and "manual tag beta: 3 users" in text.stdout and "absent" in text.stdout
    everyone = _camp(world, "tag", "remove", "beta", "--all")
    assert everyone.returncode == 0 and "3 removed" in everyone.stdout
    assert _final(world) == []
    effects = _ledger_rows(world, "SELECT effect, count(*) FROM camp_tag_audit GROUP BY effect ORDER BY effect")
    assert effects == [("absent", 1), ("added", 4), ("already", 1), ("removed", 4)]


def test_unknown_ids_are_reported_and_nothing_is_written(world):
    out = _camp(world, "tag", "add", "beta", "--users", "1,999999,abc,2,x1,x2,x3,x4")
    assert out.returncode == 1
    assert "6 of 8 ids name no user" in out.stderr and "999999, abc, x1, x2, x3, …" in out.stderr
    assert "nothing written" in out.stderr and "Traceback" not in out.stderr
    assert _ledger_rows(world, "SELECT count(*) FROM camp_manual_tags") == [(0,)]
    assert _ledger_rows(world, "SELECT count(*) FROM camp_tag_audit") == [(0,)]
    for args in ([], ["--users", "1", "--all"], ["--users", " , "]):
        usage = _camp(world, "tag", "add", "beta", *args)
        assert usage.returncode == 2 and "Traceback" not in usage.stderr, (args, usage.stderr)
    assert _ledger_rows(world, "SELECT count(*) FROM camp_tag_audit") == [(0,)]


def test_csv_files_with_and_without_a_header(world):
    ws = world[0]
    files = {"plain.csv": "1\n2\n", "header.csv": "user_id\n3\n", "named.csv": "name,UserID\nx,4\ny,5\n",
             "bom.csv": "\ufeffcustomer;note\n6;a\n", "unknown.csv": "7\nnobody\n"}
    for name, text in files.items():
        (ws / name).write_text(text, encoding="utf-8")
    for name in ("plain.csv", "header.csv", "named.csv", "bom.csv"):
        out = _camp(world, "tag", "add", "beta", "--file", name)
        assert out.returncode == 0, (name, out.stderr)
    bad = _camp(world, "tag", "add", "beta", "--file", "unknown.csv")
    assert bad.returncode == 1 and "1 of 2 ids" in bad.stderr and "nobody" in bad.stderr
    holders = json.loads(_camp(world, "tag", "show", "beta", "--json", "--history").stdout)
    assert [h["user_id"] for h in holders["holders"]] == ["1", "2", "3", "4", "5", "6"]
    assert {e["source"] for e in holders["history"]} == {f"file:{(ws / n).resolve()}" for n in
                                                        ("plain.csv", "header.csv", "named.csv", "bom.csv")}


def test_audience_takes_the_final_users_of_the_campaign(world):
    from camp.audience import _occurrence
    from compiler.check import check_workspace
    from compiler.sql import AudienceSQL
    from compiler.workspace import load_workspace

    ws, _, data, _ = world
    program = check_workspace(load_workspace(ws)).program
    c = program.campaigns["winback_high_value"]
    at, today, _ = _occurrence(c, WHEN)
    wh = connect(data)
    sql = AudienceSQL(program, at, wh.dialect, today=today)
    rows = wh.rows(sql.sql(sql.campaign(c), pretty=False))
    wh.close()
    final = sorted({str(u) for u, excluded, held in rows if not excluded and not held})
    assert final and len(final) < len({u for u, _, _ in rows})  # some excluded or held out
    out = _camp(world, "tag", "add", "winback_wave", "--audience", "winback.camp", "--as-of", AS_OF)
    assert out.returncode == 0, out.stderr
    show = json.loads(_camp(world, "tag", "show", "winback_wave", "--json", "--history").stdout)
    assert sorted(h["user_id"] for h in show["holders"]) == final
    assert {e["source"] for e in show["history"]} == {f"audience:{(ws / 'winback.camp').resolve()}#winback_high_value@"
                                                      f"{at.astimezone(UTC).isoformat()}"}
    many = _camp(world, "tag", "add", "x", "--audience", "simple.camp")
    assert many.returncode == 2 and "declares 0 campaigns" in many.stderr


def _frames(url: str) -> dict[str, pd.DataFrame]:
    wh = connect(url)
    try:
        return {t: pd.DataFrame(wh.rows(f'SELECT * FROM "{t}"'), columns=[d[0] for d in wh.execute(
            f'SELECT * FROM "{t}" LIMIT 0').description]) for t in ("users", "orders", "user_tags")}
    finally:
        wh.close()


def test_tag_pool_equals_pandas_on_the_raw_tables(world):
    assert _camp(world, "tag", "add", "beta", "--users", "1,2,3,4").returncode == 0
    assert _camp(world, "tag", "add", "beta", "--users", "5").returncode == 0
    assert _camp(world, "tag", "remove", "beta", "--users", "5").returncode == 0
    vip = connect(world[2]).rows("SELECT user_id FROM user_tags WHERE tag = 'vip' ORDER BY user_id LIMIT 2")
    assert _camp(world, "tag", "add", "vip", "--users", ",".join(str(u) for (u,) in vip) + ",6").returncode == 0
    out = _camp(world, "tags", "--format", "json", "--as-of", AS_OF)
    assert out.returncode == 0, out.stderr
    pool = json.loads(out.stdout)
    f = _frames(world[2])
    users, orders, tags = f["users"], f["orders"], f["user_tags"]
    ids = set(users["user_id"].astype(str))
    manual = pd.DataFrame([(str(u), "beta") for u in (1, 2, 3, 4)] + [(str(u), "vip") for (u,) in vip] + [("6", "vip")],
                          columns=["user_id", "tag"])
    table = tags.assign(user_id=tags["user_id"].astype(str))[["user_id", "tag"]]
    either = pd.concat([table, manual])
    either = either[either["user_id"].isin(ids)]
    expected = either.groupby("tag")["user_id"].nunique().to_dict()
    assert {t["tag"]: t["users"] for t in pool["tags"]} == expected
    assert {t["tag"]: t["manual"] for t in pool["tags"] if t["manual"]} == {"beta": 4, "vip": 3}
    assert {t["tag"]: t["schema"] for t in pool["tags"] if t["schema"]} == \
        table[table["user_id"].isin(ids)].groupby("tag")["user_id"].nunique().to_dict()
    assert pool["users"] == len(users)
    created = pd.to_datetime(orders["created_at"], utc=True)
    at = pd.Timestamp(WHEN)

    def within(days: int) -> pd.DataFrame:
        return orders[(created >= at - timedelta(days=days)) & (created < at)]

    spent = within(30).groupby("user_id")["amount"].sum()
    seg = {s["segment"]: s["users"] for s in pool["segments"]}
    assert seg["big_spender"] == int((spent.astype(float) >= 500).sum())
    assert seg["beijing"] == int((users["city"] == "北京").sum()) > 0
    n90 = within(90).groupby("user_id").size().reindex(users["user_id"], fill_value=0)
    labels = {c["classification"]: {x["label"]: x["users"] for x in c["labels"]} for c in pool["classifications"]}
    assert labels["buyer_kind"] == {"frequent": int((n90 >= 3).sum()), "occasional": int(((n90 >= 1) & (n90 < 3)).sum()),
                                    "dormant": int((n90 == 0).sum())}
    text = _camp(world, "tags", "--as-of", AS_OF)
    assert text.returncode == 0 and "buyer_kind = frequent" in text.stdout and "manual 4" in text.stdout


@pytest.mark.parametrize("field", ["users.city", "orders.amount", "orders.brand", "users.birthday", "orders.time"])
def test_describe_equals_pandas(world, field):
    out = _camp(world, "describe", ".", field, "--format", "json", "--top", "5")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    owner, name = field.split(".")
    frame = _frames(world[2])[owner]
    column = {"time": "created_at"}.get(name, name)
    values = frame[column]
    assert got["rows"] == len(values)
    assert got["null_share"] == pytest.approx(values.isna().mean())
    assert got["distinct"] == values.nunique()
    counts = values.value_counts()
    shares = values.value_counts(normalize=True)
    top = got["top"]
    expected = sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:5]  # ties by value
    plain = [(v.isoformat() if hasattr(v, "isoformat") else str(v) if name == "amount" else v, int(n))
             for v, n in expected]
    if name == "time":  # an instant's ISO text depends on the zone it is shown in
        assert [pd.Timestamp(t["value"]) for t in top] == [pd.Timestamp(v) for v, _ in expected]
        assert [t["rows"] for t in top] == [n for _, n in plain]
    else:
        assert [(t["value"], t["rows"]) for t in top] == plain
    for t, (v, _) in zip(top, expected, strict=True):
        assert t["share"] == pytest.approx(shares[v])
    if name in ("amount", "birthday", "time"):
        present = frame[column].dropna()
        lo, hi = present.min(), present.max()
        if name == "time":
            assert pd.Timestamp(got["min"]) == pd.Timestamp(lo) and pd.Timestamp(got["max"]) == pd.Timestamp(hi)
        elif name == "birthday":
            assert (got["min"], got["max"]) == (lo.isoformat(), hi.isoformat())
        else:
            assert (float(got["min"]), float(got["max"])) == (float(lo), float(hi))
    else:
        assert got["min"] is None and got["max"] is None


def test_describe_unknown_field_says_what_was_meant(world):
    out = _camp(world, "describe", ".", "users.ctiy")
    assert out.returncode == 2 and "did you mean `users.city`" in out.stderr and "Traceback" not in out.stderr
    out = _camp(world, "describe", ".", "order.amount")
    assert out.returncode == 2 and "`orders.amount`" in out.stderr


def test_a_run_sends_to_the_users_tagged_by_hand(world):
    """A run's snapshot reads the manual tags (plan.tags) as `camp audience` does: the users the campaign sends
    to are exactly those `camp audience` lists."""
    from compiler.plan import StepPlan
    from runtime.context import Run
    from tests.runtime.steps import plan_for, run_engine

    ws, _, data, ledger = world
    assert _camp(world, "tag", "add", "beta", "--users", "1,2,3,4,5,6,7,8").returncode == 0
    expected = sorted(_final(world), key=int)
    assert expected
    plan = plan_for(ws, "beta_invite", WHEN)
    assert plan.tags == ["beta", "complained"]
    plan = StepPlan.model_validate(plan.model_dump(mode="json"))  # as a flow receives it
    run_engine(Run(plan, open_ledger(ledger), data, WHEN), 50)
    got = _ledger_rows(world, "SELECT user_id FROM camp_recipients")
    assert sorted((str(u) for (u,) in got), key=int) == expected


def test_the_ledger_guards_its_tag_tables(world):
    """One row per (tag, user); the audit trail takes only the actions and effects the enums name."""
    lg = open_ledger(world[3])
    try:
        at = datetime(2026, 12, 1, tzinfo=UTC)
        lg.add_tag("t", ["1"], "me", at, None, "users")
        with pytest.raises(Exception, match="(?i)duplicate|unique|constraint"):
            lg.bulk_insert("camp_manual_tags", ["tag", "user_id", "added_at", "added_by", "change_id"],
                           [("t", "1", at, "me", "x")])
        with pytest.raises(Exception, match="(?i)check|constraint"):
            lg.execute("UPDATE camp_tag_audit SET effect = 'lost'")
        with pytest.raises(Exception, match="(?i)check|constraint"):
            lg.execute("UPDATE camp_tag_audit SET action = 'rename'")
    finally:
        lg.close()


def test_concurrent_changes_keep_one_row_per_user():
    """Two sessions adding the same users at once on a PostgreSQL ledger (a DuckDB file has one writing process):
    one row each, and the audit trail says one added them and the other found them there."""
    with pg_schema(f"camp_tags_race_{os.getpid()}") as url:
        _race(url)


def _race(url: str) -> None:
    import threading

    users = [str(u) for u in range(1, 41)]
    open_ledger(url).close()  # migrated once, before the race
    ledgers = [open_ledger(url) for _ in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def add(lg):
        try:
            start.wait()
            lg.add_tag("race", users, "me", datetime.now(UTC), None, "users")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(lg,)) for lg in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lg in ledgers:
        lg.close()
    assert errors == []
    lg = open_ledger(url)
    try:
        assert lg.rows("SELECT count(*) FROM camp_manual_tags WHERE tag = 'race'") == [(40,)]
        assert lg.rows("SELECT effect, count(*) FROM camp_tag_audit GROUP BY effect ORDER BY effect") == \
            [("added", 40), ("already", 40)]
    finally:
        lg.close()


def test_tagged_for_a_while_counts_from_when_the_tag_was_added(world):
    """`tagged "watch" for 30d` holds for a user tagged by hand at least 30 days (workspace wall clock) before the
    as-of time: `camp tag add` now, then an audience 29 days on finds nobody and one 31 days on finds them; a
    removal ends the holding; a tag only in the schema's table has no time and never holds `for` a while."""
    from datetime import UTC, datetime, timedelta

    ws = world[0]
    (ws / "watch.camp").write_text('campaign watched {\n  who tagged "watch" for 30d\n  when daily at 10:00\n'
                                   '  where sms template "recall/sms.j2"\n  how\n    step touch: notify where\n}\n'
                                   'campaign listed {\n  who tagged "vip" for 1d\n  when daily at 10:00\n'
                                   '  where sms template "recall/sms.j2"\n  how\n    step touch: notify where\n}\n',
                                   encoding="utf-8")
    assert _camp(world, "tag", "add", "watch", "--users", "3,5").returncode == 0

    def count(campaign: str, days: int) -> int:
        at = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        out = _camp(world, "audience", "watch.camp", "--campaign", campaign, "--as-of", at, "--count")
        assert out.returncode == 0, out.stderr
        return int(next(ln for ln in out.stdout.splitlines() if "matched" in ln).split()[-1].replace(",", ""))

    assert (count("watched", 29), count("watched", 31)) == (0, 2)
    assert count("listed", 31) == 0  # vip is in the schema's tags table only: no time, so never `for` a while
    assert _camp(world, "tag", "remove", "watch", "--users", "5").returncode == 0
    assert count("watched", 31) == 1
    assert camp("fmt", "watch.camp", cwd=ws).returncode == 0
    assert 'who tagged "watch" for 30d' in (ws / "watch.camp").read_text(encoding="utf-8")  # `camp fmt` keeps it
