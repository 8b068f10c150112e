"""runtime.warehouse.kept_open: read-only connects inside it are sessions of one open DuckDB file (what `camp
simulate` uses), each with its own TEMP tables, and the file is free again when it ends."""

from __future__ import annotations

import duckdb

from runtime import warehouse
from runtime.warehouse import connect, kept_open


def _shop(tmp_path) -> str:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE users (user_id BIGINT, city TEXT)")
    con.execute("INSERT INTO users VALUES (1, '北京'), (2, 'Paris')")
    con.close()
    return f"duckdb:///{path}"


def test_sessions_of_one_open_file(tmp_path, monkeypatch):
    url = _shop(tmp_path)
    opened: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(str(a[0])) or real(*a, **k))
    with kept_open(url):
        sessions = [connect(url, read_only=True) for _ in range(5)]
        for i, wh in enumerate(sessions):
            wh.execute(f"CREATE TEMP TABLE mine AS SELECT {i} AS n")  # each session's own TEMP table
        assert [wh.rows("SELECT n FROM mine")[0][0] for wh in sessions] == list(range(5))
        assert [wh.rows("SELECT current_setting('TimeZone')")[0][0] for wh in sessions] == ["UTC"] * 5
        for wh in sessions:
            wh.close()
        again = connect(url, read_only=True)  # closing the sessions left the file open
        assert again.rows("SELECT city FROM users ORDER BY user_id") == [("北京",), ("Paris",)]
        again.close()
        assert len(opened) == 1
    assert warehouse._KEPT == {}
    writer = connect(url)  # the kept connection is closed: the file can be opened for writing
    writer.execute("INSERT INTO users VALUES (3, 'Lyon')")
    writer.close()
    assert len(opened) == 2


def test_other_urls_and_nesting_connect_as_usual(tmp_path):
    url, other = _shop(tmp_path), f"duckdb:///{tmp_path / 'other.duckdb'}"
    with kept_open(url):
        with kept_open(url):  # nested: the outer one keeps it
            pass
        assert set(warehouse._KEPT) == {str(tmp_path / "shop.duckdb")}
        wh = connect(other)  # not kept: a connection of its own, writable
        wh.execute("CREATE TABLE t (x INT)")
        wh.close()
        wh = connect(url, read_only=True)
        assert wh.rows("SELECT count(*) FROM users") == [(2,)]
        wh.close()
    with kept_open("duckdb:///:memory:"):
        assert warehouse._KEPT == {}
