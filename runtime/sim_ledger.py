"""The real ledger's state -> a scratch DuckDB ledger for `camp simulate`, so the simulated month sees the caps,
coupons, exclusive holds, budgets spent and journeys already recorded, and the real ledger is never written.

    scratch_ledger(real_url, folder) -> the scratch ledger's URL
    open_scratch(url) -> the scratch ledger, opened to be written fast (it is thrown away)

A DuckDB ledger is copied byte for byte (the file and its WAL, if any), then opened in the copy, where camp's
pending migrations are applied: the real file is only read. A PostgreSQL ledger is read table by table (every
`camp_` table of the current migration) into a fresh DuckDB ledger; one at another migration than this camp is
refused (reading it with camp's migrations would write it). No ledger yet: the scratch ledger starts empty, as a
first `camp run` would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from runtime.ledger import MIGRATIONS, Ledger, open_ledger
from runtime.ledger.store import STOPPED_SCHEMA, STOPPED_TABLE
from runtime.warehouse import connect, dialect_of, duckdb_path


class ScratchError(Exception):
    """The real ledger cannot be read into a scratch copy (said to the user, exit 1)."""


def scratch_ledger(real_url: str, folder: Path) -> str:
    """A DuckDB ledger in `folder` holding the real ledger's state, migrated; its URL."""
    target = folder / "scratch-ledger.duckdb"
    url = f"duckdb:///{target}"
    if dialect_of(real_url) == "duckdb":
        src = duckdb_path(real_url)
        if src and src != ":memory:" and Path(src).exists():
            shutil.copyfile(src, target)
            wal = Path(src + ".wal")
            if wal.exists():
                shutil.copyfile(wal, str(target) + ".wal")
        open_ledger(url).close()  # pending migrations, in the copy only
        return url
    _copy_postgres(real_url, url)
    return url


def open_scratch(url: str) -> Ledger:
    """The scratch ledger at `url`, with DuckDB's automatic checkpoints put off (a checkpoint every 16 MB of
    log was a tenth of a simulated week, and grew with the ledger): nobody reopens the file after a crash."""
    lg = open_ledger(url)
    lg.execute("SET checkpoint_threshold = '64GB'")
    lg.execute(f"CREATE TABLE IF NOT EXISTS {STOPPED_TABLE} ({', '.join(f'{c} {t}' for c, t in STOPPED_SCHEMA)})")
    lg.stopped_apart = True
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
