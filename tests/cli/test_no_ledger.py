"""`camp report`, `camp runs`, `camp ledger` and `camp points` only read the ledger: on a workspace that has not
run yet they create nothing (no DuckDB file, no table in the PostgreSQL schema), say "no ledger yet at URL: run
`camp run` first" and exit 0; their machine-readable outputs stay parseable (empty), the sentence on stderr. Real
processes, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import os

import pytest

from runtime.ledger import open_ledger
from runtime.warehouse import connect
from tests.runtime.conftest import camp, make_workspace, pg_schema

COMMANDS = [  # (arguments, what stdout holds: the sentence, or an empty document)
    (["report", "."], "text"),
    (["report", ".", "--format", "json"], "report-json"),
    (["report", ".", "--format", "html"], "html"),
    (["runs", "."], "text"),
    (["runs", ".", "--json"], "[]"),
    (["ledger", "."], "text"),
    (["ledger", ".", "--json"], "[]"),
    (["points", ".", "--user", "1"], "text"),
]


@pytest.fixture(params=["duckdb", "postgres"])
def ledger_url(request, tmp_path):
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ws' / 'ledger.duckdb'}"
        return
    with pg_schema(f"camp_noledger_{os.getpid()}") as url:
        yield url


def _tables(url: str) -> list[str]:
    db = connect(url)
    try:
        return [t for (t,) in db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                         "current_schema()").fetchall()]
    finally:
        db.close()


def _absent(url: str) -> bool:
    if url.startswith("duckdb://"):
        return not os.path.exists(url.removeprefix("duckdb://"))
    return _tables(url) == []


def test_read_only_commands_create_no_ledger_and_say_so(tmp_path, ledger_url):
    root = make_workspace(tmp_path / "ws", {})
    said = f"no ledger yet at {ledger_url}: run `camp run` first"
    for args, out in COMMANDS:
        r = camp(*args, "--ledger", ledger_url, cwd=root)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        cmd = f"camp {args[0]}"
        if out == "text":
            assert r.stdout == f"{cmd}: {said}\n" and r.stderr == "", (args, r.stdout, r.stderr)
        else:
            assert r.stderr == f"{cmd}: {said}\n", (args, r.stderr)
            if out == "report-json":
                doc = json.loads(r.stdout)
                assert doc["campaigns"] == [] and doc["version"] == 1 and doc["currency"] == "CNY"
            elif out == "html":
                assert r.stdout.lstrip().lower().startswith("<!doctype html")
            else:
                assert json.loads(r.stdout) == []
        assert _absent(ledger_url), args

    open_ledger(ledger_url).close()  # once a run made it, they read it
    r = camp("runs", ".", "--json", "--ledger", ledger_url, cwd=root)
    assert r.returncode == 0 and json.loads(r.stdout) == [] and r.stderr == "", r.stderr
    assert "camp_migrations" in _tables(ledger_url)


def test_a_duckdb_file_without_camps_tables_is_no_ledger_yet_and_stays_untouched(tmp_path):
    root = make_workspace(tmp_path / "ws", {})
    url = f"duckdb:///{root / 'other.duckdb'}"
    db = connect(url)
    db.execute("CREATE TABLE notes (x integer)")
    db.close()
    r = camp("ledger", ".", "--ledger", url, cwd=root)
    assert r.returncode == 0 and "no ledger yet at" in r.stdout, r.stdout + r.stderr
    assert _tables(url) == ["notes"]
