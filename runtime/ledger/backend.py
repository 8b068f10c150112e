"""One class per database engine, holding every difference between them (as sqlglot's dialect classes do).

    backend_for("duckdb" | "postgres" | "spark") -> DuckDB() | Postgres() | runtime.spark.Spark()

The ledger and the warehouse session both go through these: placeholders, statements, transactions,
cross-process locks, `x IN list-parameter`, bulk writes and DataFrame reads. Code outside this module
never asks which engine it talks to.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from itertools import repeat
from typing import Any, ClassVar, Protocol


class Session(Protocol):
    """What the lock methods need of the ledger: statements with `?` placeholders."""

    def execute(self, sql: str, params: Sequence | None = None) -> Any: ...

    def one(self, sql: str, params: Sequence | None = None) -> Any: ...


class Backend:
    name: ClassVar[str]
    mark: ClassVar[str]  # the driver's parameter placeholder
    one_writer: ClassVar[bool]  # one process at a time may write the database (runs must not wait in-process)
    holds_ledger: ClassVar[bool] = True  # the ledger may live here (a Spark warehouse is only read)
    # a long list of values goes to a query as a TEMP table (Connection.among): DuckDB binds a list parameter slowly
    # (75,000 ids: 80 ms); PostgreSQL takes an array cheaply, and a TEMP table per batch would churn its catalog
    long_lists_as_tables: ClassVar[bool] = False

    # ------------------------------------------------------------ statements
    def ph(self, n: int = 1) -> str:
        """n placeholders, comma-separated."""
        return ", ".join([self.mark] * n)

    def sql(self, text: str) -> str:
        """A statement written with `?` placeholders, as this driver takes it."""
        return text

    def execute(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        raise NotImplementedError

    def executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        raise NotImplementedError

    def in_list(self, column: str) -> str:
        """`column` is one of the values of a list parameter (`?`)."""
        raise NotImplementedError

    def ledger_session(self, conn: Any) -> None:
        """Settings of a session that writes the ledger."""

    # ------------------------------------------------------------ transactions and locks
    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        raise NotImplementedError
        yield

    def lock_transaction(self, lg: Session, key: int) -> None:
        """Inside a transaction: no other process holding `key` until it ends."""

    def hold(self, lg: Session, key: int, sub: int) -> None:
        """Hold the session lock (key, sub) until released or the session ends (a run's liveness)."""

    def release(self, lg: Session, key: int, sub: int) -> None:
        """Release a session lock taken by `hold`."""

    def held_elsewhere(self, lg: Session, key: int, sub: int) -> bool:
        """Whether another live session holds (key, sub). Without such locks (DuckDB: one writing process
        per file, and it is this one), nobody else does."""
        return False

    def decided(self, lg: Any, occ: tuple[str, str, str], prefix: str, users: list[str]) -> set[str]:
        """Which of these users already have a delivery of the occurrence (key: prefix + user)."""
        raise NotImplementedError

    # ------------------------------------------------------------ bulk
    def bulk_insert(self, conn: Any, table: str, columns: list[str], rows: Any) -> None:
        raise NotImplementedError

    def insert_columns(self, conn: Any, table: str, columns: dict[str, Any], n: int) -> None:
        """`n` rows given column by column: each value a sequence of `n` values, or a str, int, bool or None that
        every row has."""
        cols = [repeat(v, n) if isinstance(v, (str, int, bool)) or v is None else v for v in columns.values()]
        self.bulk_insert(conn, table, list(columns), list(zip(*cols, strict=True)))

    def fresh_temp_table(self, conn: Any, name: str, columns: str) -> None:
        """A new, empty TEMP table of this session (`columns`: their SQL definitions), replacing one an
        earlier call left; never a table of the database."""
        raise NotImplementedError

    def changed(self, result: Any) -> int:
        raise NotImplementedError

    def frame(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        raise NotImplementedError

    def columns(self, conn: Any) -> list[tuple[str, str, str]]:
        """(table, column, SQL type) of every table the session sees, to check the schema against."""
        return self.execute(conn, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema NOT IN ('information_schema', 'pg_catalog')").fetchall()

    def close(self, conn: Any) -> None:
        conn.close()


FEW = 16  # rows up to which DuckDB.bulk_insert binds values instead of scanning a frame (0.5-0.7 ms against 1.6)


def _exact_decimals(frame: Any) -> Any:
    """The frame with its Decimal columns as text, which the INSERT casts to the table's DECIMAL exactly. DuckDB
    types an object column from a sample of its rows and casts every value to that type: a batch whose sampled
    costs were all 0 was read as DECIMAL(1,0), and its few 0.01 costs were stored as 0 (a larger value than the
    sample's fails the cast). A given frame is not changed."""
    text = {}
    for c in frame.columns:
        if frame[c].dtype != object:
            continue
        col = frame[c].to_numpy()  # (iterating the array, not the Series: 6x faster)
        first = next((v for v in col if v is not None), None)
        if not (isinstance(first, Decimal) or (type(first) in (int, float) and
                                               any(isinstance(v, Decimal) for v in col))):
            continue  # text, times, flags, nothing at all: typed alike from any sample
        memo: dict[Any, str] = {}  # a column holds few distinct amounts
        text[c] = [v if v is None or isinstance(v, str) else memo.get(v) or memo.setdefault(v, _plain(v)) for v in col]
    return frame.assign(**text) if text else frame


def _plain(v: Any) -> str:
    """A number as DuckDB reads a DECIMAL from text: fixed point, never an exponent (1e-07 is 0.0000001)."""
    return format(v if isinstance(v, Decimal) else Decimal(repr(v)), "f")


def _given_frame(rows: Any) -> bool:
    loaded = sys.modules.get("pandas")  # a DataFrame means pandas is loaded; COPY of tuples needs no pandas
    return loaded is not None and isinstance(rows, loaded.DataFrame)


class DuckDB(Backend):
    """One writing process per file: transactions need no cross-process lock."""

    name = "duckdb"
    mark = "?"
    one_writer = True
    long_lists_as_tables = True

    def execute(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        return conn.execute(sql, params) if params is not None else conn.execute(sql)

    def executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        conn.executemany(sql, rows)

    def in_list(self, column: str) -> str:
        return f"{column} IN (SELECT unnest(?))"

    def ledger_session(self, conn: Any) -> None:
        """Checkpoints put off until the log holds 1 GB (DuckDB's default: 16 MB) or the ledger is closed: a
        checkpoint rewrites the tables' changed parts and the whole primary-key index, so a 1M-recipient run
        checkpointing every 16 MB spent 4-6 s of its 35 s in them. The log is as durable either way: a process
        killed before its checkpoint has its log replayed when the ledger is next opened."""
        conn.execute("SET checkpoint_threshold = '1GB'")

    def decided(self, lg: Any, occ: tuple[str, str, str], prefix: str, users: list[str]) -> set[str]:
        """A vectorised scan of the occurrence beats probing its index key by key."""
        return {u for (u,) in lg.rows("SELECT user_id FROM camp_deliveries WHERE campaign = ? AND step = ? "
                                      "AND occurrence = ? AND user_id IN (SELECT unnest(?))", (*occ, users))}

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        conn.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def bulk_insert(self, conn: Any, table: str, columns: list[str], rows: Any) -> None:
        """A DataFrame scan (executemany does a few thousand rows a second on DuckDB); up to FEW rows, one INSERT
        with their values as parameters (a frame's set-up alone took 1.6 ms, a simulated month's 2,000 small
        inserts 3 s). Amounts go as fixed-point text there too: DuckDB binds Decimal("1E+2") as 1.0000."""
        if len(rows) == 0:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if len(rows) <= FEW and not _given_frame(rows):
            row = f"({', '.join(['?'] * len(columns))})"
            conn.execute(f"INSERT INTO {table} ({cols}) VALUES {', '.join([row] * len(rows))}",
                         [_plain(v) if isinstance(v, (Decimal, float)) else v for r in rows for v in r])
            return
        import pandas as pd

        frame = _exact_decimals(rows if _given_frame(rows) else pd.DataFrame.from_records(rows, columns=columns))  # noqa: F841 (read by name)
        conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM frame")

    def insert_columns(self, conn: Any, table: str, columns: dict[str, Any], n: int) -> None:
        """A frame made column by column (a snapshot of 175,000 users: 70 ms, against 160 ms as rows)."""
        if n == 0:
            return
        import pandas as pd

        self.bulk_insert(conn, table, list(columns), pd.DataFrame(columns, index=pd.RangeIndex(n)))

    def fresh_temp_table(self, conn: Any, name: str, columns: str) -> None:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")

    def changed(self, result: Any) -> int:
        """How many rows an UPDATE, INSERT or DELETE changed: DuckDB returns the count as its one row."""
        row = result.fetchone()
        return int(row[0]) if row else 0

    def frame(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        """DuckDB hands the result over column by column."""
        import warnings

        with warnings.catch_warnings():  # DuckDB's own conversion calls a pandas API deprecated in 3.1
            warnings.filterwarnings("ignore", message=".*inplace keyword.*")
            return self.execute(conn, sql, params).df()


class Postgres(Backend):
    """Several processes may meet: decisions serialise on advisory locks; a run's liveness is a session lock."""

    name = "postgres"
    mark = "%s"
    one_writer = False

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def execute(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur

    def executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        with conn.cursor() as cur:
            cur.executemany(sql, rows)

    def in_list(self, column: str) -> str:
        return f"{column} = ANY(?)"

    def decided(self, lg: Any, occ: tuple[str, str, str], prefix: str, users: list[str]) -> set[str]:
        """Primary key lookups, whatever the ledger's size."""
        return {u for (u,) in lg.rows("SELECT user_id FROM camp_deliveries WHERE idempotency_key = ANY(?)",
                                      ([prefix + u for u in users],))}

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            yield

    def lock_transaction(self, lg: Session, key: int) -> None:
        lg.execute(f"SELECT pg_advisory_xact_lock({key})")

    def hold(self, lg: Session, key: int, sub: int) -> None:
        lg.execute("SELECT pg_advisory_lock(?, ?)", (key, sub))

    def release(self, lg: Session, key: int, sub: int) -> None:
        lg.execute("SELECT pg_advisory_unlock(?, ?)", (key, sub))

    def held_elsewhere(self, lg: Session, key: int, sub: int) -> bool:
        """The server drops a session's locks when its process dies: a lock we can take is nobody's."""
        if not lg.one("SELECT pg_try_advisory_lock(?, ?)", (key, sub)):
            return True
        lg.execute("SELECT pg_advisory_unlock(?, ?)", (key, sub))
        return False

    def bulk_insert(self, conn: Any, table: str, columns: list[str], rows: Any) -> None:
        """COPY; missing values of a DataFrame (NaN, NaT) are NULL."""
        if len(rows) == 0:
            return
        cols = ", ".join(f'"{c}"' for c in columns)
        if _given_frame(rows):
            rows = rows[columns].astype(object).where(rows[columns].notna(), None).itertuples(index=False, name=None)
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def fresh_temp_table(self, conn: Any, name: str, columns: str) -> None:
        """pg_temp names this session's temporary schema only: the DROP cannot reach a table of the database."""
        self.execute(conn, f"DROP TABLE IF EXISTS pg_temp.{name}")
        self.execute(conn, f"CREATE TEMP TABLE {name} ({columns})")

    def changed(self, result: Any) -> int:
        """How many rows an UPDATE, INSERT or DELETE changed: the cursor's rowcount."""
        return int(result.rowcount)

    def frame(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        import pandas as pd

        cur = self.execute(conn, sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])


BACKENDS: dict[str, Backend] = {b.name: b for b in (DuckDB(), Postgres())}


def backend_for(dialect: str) -> Backend:
    if dialect == "spark" and dialect not in BACKENDS:  # pyspark is imported only where Spark is used
        from runtime.spark import Spark

        BACKENDS[dialect] = Spark()
    return BACKENDS[dialect]

