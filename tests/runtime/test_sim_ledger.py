"""The scratch ledger of `camp simulate` (runtime.sim_ledger): a copy of the real ledger's state, in memory when the
real ledger is small, in the simulation's folder otherwise or when the real file cannot be attached; the real
ledger never written; an in-memory copy's memory given back by `drop_scratch`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from runtime import sim_ledger
from runtime.ledger import open_ledger
from runtime.sim_ledger import drop_scratch, open_scratch, scratch_ledger
from runtime.warehouse import connect
from tests.runtime.conftest import pg_schema

DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _real(url: str) -> None:
    lg = open_ledger(url)
    try:
        lg.add_spend("spring", DAY, Decimal("12.34"))
    finally:
        lg.close()


def _spend(url: str) -> list[tuple]:
    lg = open_ledger(url)
    try:
        return lg.rows("SELECT campaign, day, amount FROM camp_spend")
    finally:
        lg.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_small_duckdb_ledger_is_copied_into_memory_and_never_written(tmp_path):
    real = tmp_path / "ledger.duckdb"
    _real(f"duckdb:///{real}")
    before = _digest(real)
    (tmp_path / "sim").mkdir()
    url = scratch_ledger(f"duckdb:///{real}", tmp_path / "sim")
    try:
        assert url.startswith("duckdb:///:memory:camp-sim-")
        assert list((tmp_path / "sim").iterdir()) == []  # nothing on disk
        assert _spend(url) == [("spring", DAY, Decimal("12.34"))]
        lg = open_scratch(url)  # written as a simulation writes it
        try:
            lg.add_spend("spring", DAY, Decimal("1"))
            lg.record_stopped("r", ("c", "s", "o"), [((None, None, "suppressed", None, Decimal(0), NOW), ["u"])])
        finally:
            lg.close()
        assert _spend(url) == [("spring", DAY, Decimal("13.34"))]  # kept between connections
    finally:
        drop_scratch(url)
    assert _digest(real) == before
    assert _spend(f"duckdb:///{real}") == [("spring", DAY, Decimal("12.34"))]
    gone = connect(url)  # the memory given back: the same name is a new, empty database
    try:
        assert gone.rows("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'camp%'") == [(0,)]
    finally:
        gone.close()


def test_no_ledger_yet_gives_an_empty_scratch_ledger_in_memory(tmp_path):
    url = scratch_ledger(f"duckdb:///{tmp_path / 'none.duckdb'}", tmp_path)
    try:
        assert url.startswith("duckdb:///:memory:") and _spend(url) == []
    finally:
        drop_scratch(url)
    assert not (tmp_path / "none.duckdb").exists()


def test_a_ledger_over_the_limit_is_copied_to_a_file_in_the_folder(tmp_path, monkeypatch):
    real = tmp_path / "ledger.duckdb"
    _real(f"duckdb:///{real}")
    monkeypatch.setattr(sim_ledger, "IN_MEMORY_UP_TO", 1)
    (tmp_path / "sim").mkdir()
    url = scratch_ledger(f"duckdb:///{real}", tmp_path / "sim")
    assert url == f"duckdb:///{tmp_path / 'sim' / 'scratch-ledger.duckdb'}"
    assert _spend(url) == [("spring", DAY, Decimal("12.34"))]
    drop_scratch(url)  # a file stays for its folder's owner
    assert (tmp_path / "sim" / "scratch-ledger.duckdb").exists()


def test_a_real_file_another_process_writes_is_copied_byte_for_byte(tmp_path):
    """DuckDB refuses to attach a file another process holds for writing: the scratch ledger is then a copy of
    the file in the folder, as before the in-memory copy."""
    real = tmp_path / "ledger.duckdb"
    _real(f"duckdb:///{real}")
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(real)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        (tmp_path / "sim").mkdir()
        t0 = time.monotonic()
        url = scratch_ledger(f"duckdb:///{real}", tmp_path / "sim")
        assert time.monotonic() - t0 < 20  # no wait for the writer to leave
        assert url.endswith("scratch-ledger.duckdb")
    finally:
        holder.kill()
        holder.wait()
    assert _spend(url) == [("spring", DAY, Decimal("12.34"))]


def test_a_postgresql_ledger_is_read_into_memory(tmp_path):
    with pg_schema(f"camp_scratch_{os.getpid()}") as real:
        _real(real)
        url = scratch_ledger(real, tmp_path)
        try:
            assert url.startswith("duckdb:///:memory:camp-sim-")
            assert _spend(url) == [("spring", DAY, Decimal("12.34"))]
        finally:
            drop_scratch(url)
        assert list(tmp_path.iterdir()) == []


def test_a_failed_copy_gives_its_memory_back(tmp_path, monkeypatch):
    real = tmp_path / "ledger.duckdb"
    _real(f"duckdb:///{real}")

    def broken(real_url: str, url: str) -> None:
        raise RuntimeError("the server went away")

    monkeypatch.setattr(sim_ledger, "_copy_postgres", broken)
    monkeypatch.setattr(sim_ledger, "_postgres_size", lambda url: 0)
    monkeypatch.setattr(sim_ledger, "dialect_of", lambda url: "postgres")
    before = set(sim_ledger._KEEPERS)
    with pytest.raises(RuntimeError):
        scratch_ledger("postgresql://nowhere/db", tmp_path)
    assert set(sim_ledger._KEEPERS) == before


def test_stopped_decisions_count_their_users_in_the_run_summary(tmp_path):
    """A scratch ledger writes a stopped decision once with its users; the run summary's counts (status_counts)
    equal a count of the users one by one through the view the report reads."""
    url = scratch_ledger(f"duckdb:///{tmp_path / 'none.duckdb'}", tmp_path)
    lg = open_scratch(url)
    try:
        occ = ("c", "s", "o")
        lg.record_stopped("r1", occ, [((None, "push", "suppressed", "no_consent:push", Decimal("0.5"), NOW), ["a", "b"]),
                                      ((None, "sms", "budget_exhausted", "budget:total", Decimal("0.25"), NOW), ["c"])])
        lg.record_stopped("r1", occ, [((None, "push", "suppressed", "no_consent:push", Decimal("0.5"), NOW), ["d"])])
        lg.record_stopped("r2", ("c", "s", "other"), [((None, None, "suppressed", "x", Decimal(1), NOW), ["a"])])
        counts = [tuple(r) for r in lg.status_counts(occ)]
        by_user = lg.rows("SELECT status, reason, count(*), sum(cost) FROM camp_sim_stopped WHERE campaign = 'c' AND "
                          "step = 's' AND occurrence = 'o' GROUP BY ALL ORDER BY 1, 2")
        users = lg.rows("SELECT run_id, user_id, reason FROM camp_sim_stopped ORDER BY 1, 2")
    finally:
        lg.close()
        drop_scratch(url)
    assert counts == [tuple(r) for r in by_user] == [("budget_exhausted", "budget:total", 1, Decimal("0.25")),
                                                    ("suppressed", "no_consent:push", 3, Decimal("1.5"))]
    assert users == [("r1", "a", "no_consent:push"), ("r1", "b", "no_consent:push"), ("r1", "c", "budget:total"),
                     ("r1", "d", "no_consent:push"), ("r2", "a", "x")]


def _recipients_ddl(url: str) -> tuple[list[tuple], int]:
    lg = open_ledger(url)
    try:
        cols = lg.rows("SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = "
                       "'camp_recipients' AND table_schema = 'main' ORDER BY ordinal_position")
        keys = lg.rows("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'camp_recipients' AND "
                       "constraint_type = 'PRIMARY KEY'")[0][0]
        return cols, keys
    finally:
        lg.close()


def test_the_scratch_snapshot_drops_only_its_primary_key_and_keeps_every_row_in_order(tmp_path):
    """The scratch ledger writes its snapshots without the primary key's index (half their cost); the columns, their
    NOT NULLs and the real ledger's recipients stay, and the real ledger keeps its key."""
    real = tmp_path / "ledger.duckdb"
    lg = open_ledger(f"duckdb:///{real}")
    try:
        with lg.decision():
            lg.add_recipients(("c", "s", "o2"), "h", 0, ["b", "a"], [False, True], ["{}", "{}"], None)
            lg.add_recipients(("c", "s", "o1"), "h", 0, ["z"], [False], "{}", None)
    finally:
        lg.close()
    real_cols, real_keys = _recipients_ddl(f"duckdb:///{real}")
    assert real_keys == 1
    (tmp_path / "sim").mkdir()
    url = scratch_ledger(f"duckdb:///{real}", tmp_path / "sim")
    try:
        open_scratch(url).close()
        open_scratch(url).close()  # a second opening finds it done
        cols, keys = _recipients_ddl(url)
        assert keys == 0 and cols == real_cols and all(n == "NO" for _, _, n in cols)
        lg = open_ledger(url)
        try:
            assert lg.rows("SELECT occurrence, seq, user_id, held_out FROM camp_recipients") == [
                ("o1", 0, "z", False), ("o2", 0, "b", False), ("o2", 1, "a", True)]
            with lg.decision():
                lg.add_recipients(("c", "s", "o1"), "h", 1, ["y"], [False], "", None)
            assert lg.recipient_rows(("c", "s", "o1"), 0, 5)[1].user_id == "y"
            with pytest.raises(Exception, match="NOT NULL"):
                lg.execute("INSERT INTO camp_recipients VALUES ('c', 's', 'o3', 0, NULL, false, '')")
        finally:
            lg.close()
        assert _recipients_ddl(f"duckdb:///{real}") == (real_cols, 1)
    finally:
        drop_scratch(url)


def _delivery(occ: tuple, user: str, status: str) -> tuple:
    return (f"{'/'.join(occ)}/{user}", *occ, user, None, "push", status, None, Decimal(0), "CNY", None, None, "h",
            "r", None, NOW, None, NOW, None, 0, None)


def test_a_first_steps_scratch_snapshot_holds_only_the_recipients_read_back(tmp_path):
    """A scratch ledger records a first step's snapshot size without its rows; the batch then writes the rows of the
    users left pending (with their data), which a recovery reads back as the real ledger's full snapshot gives
    them. A follow-up's part keeps every row (the journey reads which users it took) and gets its data filled in."""
    url = scratch_ledger(f"duckdb:///{tmp_path / 'none.duckdb'}", tmp_path)
    lg = open_scratch(url)
    real = open_ledger(f"duckdb:///{tmp_path / 'real.duckdb'}")
    first, part = ("c", "s", "o"), ("c", "later", "o")
    try:
        for ledger in (lg, real):
            with ledger.decision():
                ledger.add_recipients(first, "h", 0, ["a", "b", "c"], [False, True, False],
                                      ['{"x": 1}', '{"x": 2}', '{"x": 3}'] if ledger is real else "", None)
                ledger.record_decisions([_delivery(first, "a", "suppressed"), _delivery(first, "c", "pending")], [], [])
        with lg.decision():
            assert lg.rows("SELECT count(*) FROM camp_recipients")[0][0] == 0
            lg.fill_payloads(first, [(2, "c", False, '{"x": 3}')])
        assert lg.snapshot_size(first) == real.snapshot_size(first) == 3
        assert lg.unsent(first) == real.unsent(first)
        assert [(r.user_id, r.seq, r.data) for r in lg.unsent(first)] == [("c", 2, '{"x": 3}')]
        with lg.decision():
            lg.add_recipients(part, "h", 0, ["a", "b"], [False, False], "", "2026-12-01T00:00:00+00:00")
            lg.fill_payloads(part, [(1, "b", False, '{"x": 5}')])
        assert lg.rows("SELECT seq, user_id, data FROM camp_recipients WHERE step = 'later' ORDER BY seq") == [
            (0, "a", ""), (1, "b", '{"x": 5}')]
        assert lg.snapshot_part(part, "2026-12-01T00:00:00+00:00") == (0, 2)
    finally:
        lg.close()
        real.close()
        drop_scratch(url)
