"""One bad user or template never stops a campaign (issue 10): `camp run` as a process over a shop where
about 1% of the users have a time zone that is not a zone and about 1% hit a template that recurses,
loops too long or prints an undefined value, only for them. Everyone else is delivered; the template
ones fail with a reason; the bad-zone ones are delivered on the workspace's zone and counted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import duckdb

from compiler.sql import AudienceSQL
from runtime.demo_data import make_shop
from tests.runtime.conftest import camp, make_workspace
from tests.runtime.steps import program_of

AS_OF = "2026-12-01T10:00+08:00"  # 10:00 in the workspace's zone (Asia/Shanghai), 02:00 UTC: quiet in UTC
CAMPAIGN = '''
campaign t_iso "隔离" {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "iso.j2"
  how
    step touch: notify where
  how much
    quiet 22:00-08:00
}
'''
BAD_ZONES = ["America", "Mars/Base", "A" * 300]


def _template(recurse: list[str], loop: list[str], undefined: list[str]) -> str:
    return ("{% macro deep(n) %}{{ deep(n + 1) }}{% endmacro %}"
            "{{ user.name | default('朋友') }}，你好"
            f"{{% if user.id in {recurse} %}}{{{{ deep(0) }}}}{{% endif %}}"
            f"{{% if user.id in {loop} %}}{{% for i in range(100000) %}}{{% for j in range(100000) %}}"
            "{% endfor %}{% endfor %}{% endif %}"
            f"{{% if user.id in {undefined} %}}{{{{ [user.city] }}}}{{% endif %}}")


def _ledger(root, sql):
    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_bad_zones_and_failing_templates_fail_only_their_users(tmp_path, prefect_env):
    root = make_workspace(tmp_path / "ws", {"iso.camp": CAMPAIGN}, templates={"iso.j2": "{{ user.name }}"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 600, seed=3)
    _, program = program_of(root)
    sql = AudienceSQL(program, datetime.fromisoformat(AS_OF).astimezone(UTC), "duckdb")
    con = duckdb.connect(str(root / "shop.duckdb"))
    audience = sorted(str(u) for u, excluded, _ in con.execute(
        sql.sql(sql.campaign(program.campaigns["t_iso"]), pretty=False)).fetchall() if not excluded)
    consent = {str(u) for (u,) in con.execute("SELECT user_id FROM consent WHERE channel = 'push'").fetchall()}
    reachable = [u for u in audience if u in consent]
    step = len(reachable) // 10
    picks = reachable[step // 2::step][:9]  # about 1% each of bad zones and failing templates, spread out
    zones, recurse, loop, undefined = picks[:3], picks[3:5], picks[5:7], picks[7:9]
    con.execute("UPDATE users SET timezone = 'Asia/Shanghai'")
    for uid, zone in zip(zones, BAD_ZONES, strict=True):
        con.execute("UPDATE users SET timezone = ? WHERE user_id = ?", (zone, int(uid)))
    con.execute(f"UPDATE users SET city = NULL WHERE user_id IN ({', '.join(undefined)})")
    con.close()
    (root / "templates" / "iso.j2").write_text(_template(recurse, loop, undefined), encoding="utf-8")
    # the zone really is quiet in UTC at this time: a fallback to anything but the workspace zone would defer
    assert datetime.fromisoformat(AS_OF).astimezone(ZoneInfo("UTC")).hour == 2

    t0 = time.monotonic()
    first = camp("run", "iso.camp", "--as-of", AS_OF, cwd=root, env=prefect_env)
    took = time.monotonic() - t0
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert "users with an unknown time zone (workspace zone used): 3" in first.stdout, first.stdout
    assert took < 120, took  # the loop bomb alone used to keep a run going past 120 s

    rows = {u: (s, r, e) for u, s, r, e in _ledger(
        root, "SELECT user_id, status, reason, error FROM camp_deliveries WHERE campaign = 't_iso'")}
    assert sorted(rows) == audience
    failed_as = {**{u: "template: recursion limit" for u in recurse}, **{u: "template: time limit" for u in loop},
                 **{u: "template: missing value" for u in undefined}}
    for uid in audience:
        status, reason, error = rows[uid]
        if uid in failed_as:
            assert (status, reason) == ("failed", failed_as[uid]), (uid, rows[uid])
            assert error and "iso.j2" in error, error
        elif uid in consent:
            assert (status, reason) == ("sent", None), (uid, rows[uid])  # bad-zone users included
        else:
            assert (status, reason) == ("suppressed", "no_consent:push"), (uid, rows[uid])
    bodies = _ledger(root, "SELECT user_id, body FROM camp_outbox WHERE campaign = 't_iso'")
    assert sorted(u for u, _ in bodies) == sorted(u for u in audience if u in consent and u not in failed_as)
    assert not [b for _, b in bodies if "Undefined" in b or "None" in b]
    assert _ledger(root, "SELECT status FROM camp_runs WHERE campaign = 't_iso'") == [("finished",)]

    before = sorted(_ledger(root, "SELECT * FROM camp_deliveries"))
    again = camp("run", "iso.camp", "--as-of", AS_OF, cwd=root, env=prefect_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(_ledger(root, "SELECT * FROM camp_deliveries")) == before
    assert len(_ledger(root, "SELECT * FROM camp_outbox")) == len(bodies)
    assert [s for (s,) in _ledger(root, "SELECT status FROM camp_runs WHERE campaign = 't_iso'")] == ["finished"] * 2


BAD_NAMES = ["America", "Asia", "Mars/Base", "A" * 300, "Asia/Shang\x00hai", "../etc/passwd", "/etc/localtime", "",
             "Asia/", "\ud800", "Europe//London"]


def test_one_zone_helper_says_none_for_every_kind_of_bad_name_and_never_raises():
    from compiler.zones import zone_or_none
    from runtime.decide import Recipient, bad_zone, user_zone
    from tests.runtime.test_sandbox import _plan

    assert zone_or_none("Asia/Shanghai") == ZoneInfo("Asia/Shanghai")
    plan = _plan("x").model_copy(update={"tz_field": "timezone", "timezone": "Asia/Shanghai"})
    for name in BAD_NAMES:
        assert zone_or_none(name) is None, repr(name)
        r = Recipient(0, "1", False, {"timezone": name}, {}, {})
        assert user_zone(plan, r) == ZoneInfo("Asia/Shanghai")
        assert bad_zone(plan, r) == bool(name)
    assert zone_or_none(None) is None and zone_or_none(8) is None
    good = Recipient(0, "1", False, {"timezone": "Europe/London"}, {}, {})
    assert user_zone(plan, good) == ZoneInfo("Europe/London") and not bad_zone(plan, good)


def test_camp_check_locates_a_zone_folder_and_a_300_character_zone(tmp_path):
    files = {"z.camp": '''campaign z1 {
  who city = "x"
  when daily at 10:00 tz "Asia"
  how
    step s: notify where
  where push template "ok.j2"
}
campaign z2 {
  who city = "x"
  when daily at 10:00 tz "''' + "A" * 300 + '''"
  where push template "ok.j2"
  how
    step s: notify where
}
'''}
    root = make_workspace(tmp_path / "ws", files, templates={"ok.j2": "hi"})
    r = camp("check", ".", "--format", "json", cwd=root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    import json

    found = [(d["code"], d["line"], d["column"]) for d in json.loads(r.stdout) if d["file"].endswith("z.camp")]
    assert found == [("E402", 3, 23), ("E402", 10, 23)], r.stdout
    (root / "camp.toml").write_text((root / "camp.toml").read_text().replace('"Asia/Shanghai"', '"America"'))
    r = camp("check", ".", "--format", "json", cwd=root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert any(d["code"] == "E002" and "America" in d["message"] for d in json.loads(r.stdout)), r.stdout
