"""The ledger database: connection, migrations, transactions, the cross-process lock, bulk writes.

The ledger is the source of truth for what was decided and sent. DuckDB (one writer process per
file) by default, PostgreSQL when several runs may meet. Decisions that read and then write shared
state (caps, budgets, exclusive groups) run inside `decision()`: one transaction holding an
advisory lock on PostgreSQL, so two processes never both see room for the same last send.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from runtime.warehouse import Warehouse, connect

MANY = 2_000  # values up to which a query names them in a list parameter, not a TEMP table (Connection.among)
_LOCK_KEY = 7_262_001  # pg_advisory lock id of camp's decisions
_MIGRATION_LOCK = 7_262_002


class Connection:
    """The session: statements with `?` placeholders on any engine, transactions, migrations. The named
    queries camp makes are `runtime.ledger.store.Ledger`'s methods, built on this."""

    def __init__(self, url: str):
        from runtime.ledger.backend import backend_for
        from runtime.warehouse import dialect_of

        if not backend_for(dialect_of(url)).holds_ledger:
            raise ValueError(f"the ledger cannot live in {url}: a {dialect_of(url)} warehouse is only read; keep the "
                             f"ledger in DuckDB or PostgreSQL ([ledger] url in camp.toml, --ledger)")
        self.url = url
        self.db: Warehouse = connect(url)
        self.dialect = self.db.dialect
        self.backend = self.db.backend
        self.backend.ledger_session(self.db.conn)
        self._depth = 0

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ statements
    def ph(self, n: int = 1) -> str:
        return self.backend.ph(n)

    def execute(self, sql: str, params: Sequence | None = None):
        """A statement with `?` placeholders, whatever the engine."""
        return self.backend.execute(self.db.conn, self.backend.sql(sql), params)

    def rows(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence | None = None) -> Any:
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self.backend.transaction(self.db.conn):
                yield
        finally:
            self._depth = 0

    @contextmanager
    def decision(self) -> Iterator[None]:
        """A transaction in which no other camp process decides (caps, budgets, exclusive groups)."""
        with self.transaction():
            self.backend.lock_transaction(self, _LOCK_KEY)
            yield

    def bulk_insert(self, table: str, columns: list[str], rows) -> None:
        self.backend.bulk_insert(self.db.conn, table, columns, rows)

    def insert_columns(self, table: str, columns: dict, n: int) -> None:
        """`n` rows given column by column (Backend.insert_columns)."""
        self.backend.insert_columns(self.db.conn, table, columns, n)

    def frame(self, sql: str, params: Sequence | None = None):
        return self.backend.frame(self.db.conn, self.backend.sql(sql), params)

    def in_list(self, column: str) -> str:
        """`column` is one of the values of a list parameter (`?`)."""
        return self.backend.in_list(column)

    def among(self, column: str, values: list[str], table: str) -> tuple[str, list]:
        """`column` is one of `values`: the condition and its parameters. A list parameter; on DuckDB, more than
        MANY values go to the query as the TEMP table `table`, made anew (a list parameter of 75,000 ids took
        80 ms, the table 30 ms; bench/ledger_micro.py)."""
        if len(values) <= MANY or not self.backend.long_lists_as_tables:
            return self.in_list(column), [values]
        self.backend.fresh_temp_table(self.db.conn, table, "v text")
        self.insert_columns(table, {"v": values}, len(values))
        return f"{column} IN (SELECT v FROM {table})", []

    def has_table(self, name: str) -> bool:
        """Whether the session's schema (PostgreSQL: the first of its search_path) has the table."""
        return bool(self.one("SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND "
                             "table_schema = current_schema()", (name,)))

    # ------------------------------------------------------------ migrations
    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        import runtime.ledger as package  # read at call time: a test pins an older schema by patching it

        applied: list[int] = []
        with self.transaction():
            self.backend.lock_transaction(self, _MIGRATION_LOCK)
            self.execute("CREATE TABLE IF NOT EXISTS camp_migrations (version integer PRIMARY KEY, "
                         "name text NOT NULL, applied_at timestamptz NOT NULL)")
            done = {v for (v,) in self.rows("SELECT version FROM camp_migrations")}
            for version, name, statements in package.MIGRATIONS:
                if version in done:
                    continue
                for dialect, sql in statements:
                    if dialect in (None, self.backend.name):
                        self.execute(sql)
                self.execute("INSERT INTO camp_migrations VALUES (?, ?, ?)", (version, name, datetime.now(UTC)))
                applied.append(version)
        return applied

    def version(self) -> int:
        return self.one("SELECT COALESCE(MAX(version), 0) FROM camp_migrations") or 0

