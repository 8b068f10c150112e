"""The real ledger's state -> a scratch DuckDB ledger for `camp simulate`, so the simulated month sees the caps,
coupons, exclusive holds, budgets spent and journeys already recorded, and the real ledger is never written.

    scratch_ledger(real_url, folder) -> the scratch ledger's URL
    open_scratch(url) -> the scratch ledger, opened to be written fast (it is thrown away)
    drop_scratch(url) -> None: an in-memory scratch ledger's memory given back

The scratch ledger is a DuckDB database in memory (a named one, `duckdb:///:memory:camp-sim-…`, which every
connection of this process to that URL shares, kept alive by a connection held here until `drop_scratch`): it is
thrown away, so nothing it writes needs to reach a disk, where a DuckDB file writes its log at every commit (a
simulation commits a thousand times a week). When the real ledger is larger than `IN_MEMORY_UP_TO` (256 MiB), it is
a file in `folder` instead: DuckDB keeps an in-memory table uncompressed (a 3M-row table like camp_recipients took
11 MB in a file and 159 MB in memory here).

A DuckDB ledger is read through a read-only ATTACH and copied whole (`COPY FROM DATABASE`); a file in `folder` is
a byte-for-byte copy of the file and its WAL, as is the fallback when another process holds the real file. camp's
pending migrations are then applied in the copy only: the real file is only read. A PostgreSQL ledger is read
table by table (every `camp_` table of the current migration) into the fresh scratch ledger; one at another
migration than this camp is refused (reading it with camp's migrations would write it). No ledger yet: the scratch
ledger starts empty, as a first `camp run` would.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from runtime.ledger import MIGRATIONS, open_ledger
from runtime.ledger.scratch import ScratchLedger
from runtime.warehouse import connect, dialect_of, duckdb_path


class ScratchError(Exception):
    """The real ledger cannot be read into a scratch copy (said to the user, exit 1)."""


IN_MEMORY_UP_TO = 256 << 20  # bytes of real ledger the scratch copy may hold in memory
_KEEPERS: dict[str, Any] = {}  # in-memory scratch ledger URL -> the connection that keeps it alive


def scratch_ledger(real_url: str, folder: Path) -> str:
    """A DuckDB ledger holding the real ledger's state, migrated, in memory (else in `folder`); its URL."""
    if dialect_of(real_url) == "duckdb":
        url = _duckdb_copy(real_url, folder)
        open_ledger(url).close()  # pending migrations, in the copy only
        return url
    url = _in_memory()[0] if _postgres_size(real_url) <= IN_MEMORY_UP_TO else f"duckdb:///{folder / 'scratch-ledger.duckdb'}"
    try:
        _copy_postgres(real_url, url)
    except BaseException:
        drop_scratch(url)
        raise
    return url


def _duckdb_copy(real_url: str, folder: Path) -> str:
    """The real DuckDB ledger (if any) copied as it is, in memory when small enough and attachable, else into a file
    in `folder`; the copy's URL."""
    src = duckdb_path(real_url)
    src = src if src and src != ":memory:" and Path(src).exists() else None
    if _size(src) <= IN_MEMORY_UP_TO:
        url, keeper = _in_memory()
        try:
            if src is not None:
                _attach_copy(keeper, src)
        except Exception:  # noqa: BLE001 (held by a writing process, or not a database DuckDB can attach)
            drop_scratch(url)
        else:
            return url
    target = folder / "scratch-ledger.duckdb"
    if src is not None:
        shutil.copyfile(src, target)
        wal = Path(src + ".wal")
        if wal.exists():
            shutil.copyfile(wal, str(target) + ".wal")
    return f"duckdb:///{target}"


def drop_scratch(url: str) -> None:
    """An in-memory scratch ledger's memory given back (once no other connection to it is open); a file's stays
    for the caller to remove with its folder."""
    keeper = _KEEPERS.pop(url, None)
    if keeper is not None:
        keeper.close()


def _in_memory() -> tuple[str, Any]:
    import duckdb

    name = f":memory:camp-sim-{uuid.uuid4().hex[:12]}"
    keeper = duckdb.connect(name)
    url = f"duckdb:///{name}"
    _KEEPERS[url] = keeper
    return url, keeper


def _attach_copy(keeper: Any, src: str) -> None:
    """The DuckDB file at `src` (its WAL replayed) copied whole into the in-memory database `keeper` holds."""
    (mine,) = keeper.execute("SELECT current_database()").fetchone()
    quoted = src.replace("'", "''")
    keeper.execute(f"ATTACH '{quoted}' AS camp_real_ledger (READ_ONLY)")
    try:
        keeper.execute(f'COPY FROM DATABASE camp_real_ledger TO "{mine}"')
    finally:
        keeper.execute("DETACH camp_real_ledger")


def _size(path: str | None) -> int:
    """Bytes of a DuckDB file and its WAL (0 for none)."""
    if path is None:
        return 0
    return sum(p.stat().st_size for p in (Path(path), Path(path + ".wal")) if p.exists())


def _postgres_size(real_url: str) -> int:
    """Bytes of the `camp_` tables (with their indexes) of a PostgreSQL ledger."""
    wh = connect(real_url, read_only=True)
    try:
        (n,) = wh.rows("SELECT coalesce(sum(pg_total_relation_size(quote_ident(table_name))), 0) FROM "
                       "information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                       "AND table_name LIKE 'camp\\_%'")[0]
    finally:
        wh.close()
    return int(n)


def open_scratch(url: str) -> ScratchLedger:
    """The scratch ledger at `url`, with DuckDB's automatic checkpoints put off (a checkpoint every 16 MB of
    log was a tenth of a simulated week, and grew with the ledger): nobody reopens the file after a crash."""
    lg = ScratchLedger(url)
    try:
        lg.migrate()
        lg.execute("SET checkpoint_threshold = '64GB'")
        lg.prepare()
    except BaseException:
        lg.close()
        raise
    return lg


def _copy_postgres(real_url: str, url: str) -> None:
    wh = connect(real_url, read_only=True)
    try:
        found = wh.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                        "AND table_type = 'BASE TABLE' "
                        "AND table_name LIKE 'camp\\_%'")
        tables = {r[0] for r in found}
        lg = open_ledger(url)
        try:
            if "camp_migrations" not in tables:
                return  # no ledger there yet: start empty
            theirs = {r[0] for r in wh.rows("SELECT version FROM camp_migrations")}
            ours = {v for v, _, _ in MIGRATIONS}
            if theirs != ours:
                raise ScratchError(f"the ledger at {real_url} has migrations {sorted(theirs)}, this camp "
                                   f"{sorted(ours)}: run `camp run` or `camp sync` with this camp first (a "
                                   "simulation never writes the real ledger)")
            mine = [r[0] for r in lg.rows("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
                                          "table_name LIKE 'camp\\_%' ESCAPE '\\' AND table_schema = 'main'")]
            for table in sorted(t for t in mine if t in tables and t != "camp_migrations"):
                frame = wh.frame(f"SELECT * FROM {table}")
                if len(frame):
                    with lg.transaction():
                        lg.bulk_insert(table, list(frame.columns), frame)
        finally:
            lg.close()
    finally:
        wh.close()
