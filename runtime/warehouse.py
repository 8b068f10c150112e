"""The workspace's database: connect from a URL, create tables from the schema, load rows,
run audience SQL. DuckDB (`duckdb:///path.duckdb`, `duckdb:///:memory:`) by default,
PostgreSQL (`postgresql://user@host:port/db`) in production, Spark (`spark+local:///folder`,
`spark://host:port/folder`: runtime/spark.py) to read audiences from a distributed engine. Sessions run in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from compiler.schema import Schema

if TYPE_CHECKING:
    from runtime.ledger.backend import Backend

SPARK_SCHEMES = ("spark+local://", "spark://")  # runtime/spark.py

TYPES = {"text": "text", "enum": "text", "number": "decimal(18, 4)", "bool": "boolean", "date": "date",
         "timestamp": "timestamptz"}


def sql_type(t) -> str:
    if t.kind == "money":
        return "decimal(18, 2)"
    return TYPES[t.kind]


@dataclass
class Warehouse:
    dialect: str
    conn: Any
    ledger_catalog: str | None = None  # set by `beside`: the ledger's tables are readable as CATALOG.main.table

    @property
    def backend(self) -> Backend:
        """Every difference between the engines lives there (runtime.ledger.backend)."""
        from runtime.ledger.backend import backend_for  # (runtime.ledger imports this module)

        return backend_for(self.dialect)

    def execute(self, sql: str, params: Iterable | None = None):
        return self.backend.execute(self.conn, sql, params)

    def rows(self, sql: str) -> list[tuple]:
        return self.execute(sql).fetchall()

    def insert(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        name = exp.to_table(table).sql(dialect=self.dialect)
        cols = ", ".join(exp.to_identifier(c, quoted=True).sql(dialect=self.dialect) for c in columns)
        self.backend.executemany(self.conn, f"INSERT INTO {name} ({cols}) VALUES ({self.backend.ph(len(columns))})",
                                 rows)

    def bulk_insert(self, table: str, columns: list[str], rows) -> None:
        """Many rows at once (tuples, or a pandas DataFrame with these columns): a DataFrame scan on
        DuckDB (executemany does a few thousand rows a second there), COPY on PostgreSQL."""
        self.backend.bulk_insert(self.conn, table, columns, rows)

    def frame(self, sql: str, params: Iterable | None = None):
        """A query's result as a pandas DataFrame (DuckDB hands it over column by column)."""
        return self.backend.frame(self.conn, sql, params)

    def close(self) -> None:
        self.backend.close(self.conn)


def duckdb_path(url: str) -> str | None:
    """The file (or `:memory:`) of a DuckDB URL; None for another engine's."""
    if not url.startswith("duckdb://"):
        return None
    return url.removeprefix("duckdb://").removeprefix("/") or ":memory:"


def exists(url: str) -> bool:
    """Whether connecting to `url` finds a database rather than making one: a DuckDB file that is there (an
    in-memory one never is); a server's database always (connecting creates nothing there)."""
    path = duckdb_path(url)
    return path is None or (path != ":memory:" and Path(path).exists())


def connect(url: str, read_only: bool = False) -> Warehouse:
    """read_only: DuckDB lets many processes read one file at once, but only one open it for writing."""
    path = duckdb_path(url)
    if path is not None:
        import duckdb

        kept = _KEPT.get(path) if read_only else None
        conn = kept.cursor() if kept is not None else _duckdb_connect(duckdb, path, read_only and not path.startswith(":memory:"))
        conn.execute("SET TimeZone = 'UTC'")
        return Warehouse("duckdb", conn)
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        conn.execute("SET TIME ZONE 'UTC'")
        return Warehouse("postgres", conn)
    if url.startswith(SPARK_SCHEMES):
        from runtime.spark import connect_spark

        return Warehouse("spark", connect_spark(url))
    raise ValueError(f"unsupported database URL {url!r}: use duckdb:///file.duckdb, postgresql://... or "
                     f"spark+local:///parquet-folder")


_KEPT: dict[str, Any] = {}  # DuckDB file -> the read-only connection `kept_open` holds on it


@contextmanager
def kept_open(url: str) -> Iterator[None]:
    """Inside, `connect(url, read_only=True)` gives a session (a cursor: its own TEMP tables) of one read-only
    connection opened here, and closing it closes only the session, instead of opening and closing the file each
    time (a close is about 11 ms: a simulated week made 169). For a caller that only reads `url` meanwhile
    (`camp simulate`). Other URLs, writers, and engines other than a DuckDB file connect as usual."""
    path = duckdb_path(url)
    if path is None or path == ":memory:" or path in _KEPT:
        yield
        return
    import duckdb

    conn = _duckdb_connect(duckdb, path, True)
    _KEPT[path] = conn
    try:
        yield
    finally:
        del _KEPT[path]
        conn.close()


def beside(ledger: Warehouse, url: str) -> Warehouse | None:
    """A read-only session of the warehouse at `url` inside the ledger's own DuckDB database, when both are DuckDB
    files: the warehouse file attached READ_ONLY and made the session's default catalog, the ledger's tables
    readable as `ledger_catalog.main.TABLE`. SQL can then read both at once instead of copying a million rows
    through Python (a process cannot open one DuckDB file twice, so a second connection cannot attach the ledger).
    None for other engines or an in-memory database: the caller connects as usual."""
    if ledger.dialect != "duckdb":  # (a PostgreSQL ledger has no duckdb_databases() to ask)
        return None
    path, mine = duckdb_path(url), _catalog_file(ledger)
    if path in (None, ":memory:") or mine is None:
        return None
    current = ledger.conn.execute("SELECT current_database()").fetchone()[0]
    session = ledger.conn.cursor()  # same database, its own default catalog and TEMP tables
    if Path(path).resolve() != mine:
        name = "camp_warehouse"
        attached = {r[0] for r in session.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        if name not in attached:
            session.execute(f"ATTACH '{str(Path(path).resolve()).replace(chr(39), chr(39) * 2)}' AS {name} "
                            "(READ_ONLY)")
        session.execute(f"USE {name}")
    session.execute("SET TimeZone = 'UTC'")
    return Warehouse("duckdb", session, ledger_catalog=current)


def _catalog_file(wh: Warehouse) -> Path | None:
    """The file of a DuckDB session's default catalog (None in memory)."""
    row = wh.conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).resolve() if row and row[0] else None


def _duckdb_connect(duckdb, path: str, read_only: bool, wait: float = 30.0):
    """DuckDB allows one writing process per file (and no readers beside it): while another process
    holds the file (a `camp ledger` reading, a run finishing), wait for it rather than fail."""
    import time

    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def tables(schema: Schema) -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, SQL type)] for everything the schema declares."""
    out: dict[str, list[tuple[str, str]]] = {}
    if schema.users:
        u = schema.users
        out[u.table] = [(u.key, "bigint")] + [(f.column, sql_type(f.type)) for f in u.fields.values()]
    for ev in schema.events.values():
        out[ev.table] = [(ev.user_column, "bigint"), (ev.time_column, "timestamptz")] + \
            [(f.column, sql_type(f.type)) for f in ev.fields.values()]
    for link in (schema.tags, schema.consent):
        if link:
            out[link.table] = [(link.user_column, "bigint"), (link.value_column, "text")]
    return out


def create_tables(wh: Warehouse, schema: Schema, replace: bool = True) -> None:
    for table, cols in tables(schema).items():
        name = exp.to_table(table)
        if replace:
            wh.execute(f"DROP TABLE IF EXISTS {name.sql(dialect=wh.dialect)}")
        columns = [exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=exp.DataType.build(t))
                   for c, t in cols]
        create = exp.Create(this=exp.Schema(this=name, expressions=columns), kind="TABLE")
        wh.execute(create.sql(dialect=wh.dialect))


FAMILIES = {
    "text": ("VARCHAR", "TEXT", "CHARACTER VARYING", "CHAR", "CHARACTER", "STRING", "BPCHAR"),
    "number": ("DECIMAL", "NUMERIC", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DOUBLE", "REAL",
               "FLOAT", "DOUBLE PRECISION", "UBIGINT", "UINTEGER", "INT"),
    "bool": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"),
}
FAMILIES["enum"] = FAMILIES["text"]
FAMILIES["money"] = FAMILIES["number"]
KEY_TYPES = FAMILIES["number"] + FAMILIES["text"]


def compare_schema(wh: Warehouse, schema: Schema) -> list[str]:
    """What differs between the schema and the database, one sentence per problem (empty: all good)."""
    rows = wh.backend.columns(wh.conn)
    have: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        have.setdefault(table, {})[column] = dtype.upper()
    problems: list[str] = []

    def expect(table: str, column: str, kinds: tuple[str, ...], what: str) -> None:
        name = table.split(".")[-1]
        if name not in have:
            problems.append(f"table `{name}` does not exist in the database (the schema reads it for {what})")
            return
        if column not in have[name]:
            known = ", ".join(sorted(have[name]))
            problems.append(f"table `{name}` has no column `{column}` ({what}); it has: {known}")
            return
        actual = have[name][column]
        if not any(actual == k or actual.startswith(k + "(") for k in kinds):
            problems.append(f"`{name}.{column}` is {actual} in the database, but {what} needs "
                            f"{' or '.join(kinds[:3]).lower()}")

    if schema.users:
        u = schema.users
        expect(u.table, u.key, KEY_TYPES, "the users key")
        for f in u.fields.values():
            expect(u.table, f.column, FAMILIES[f.type.kind], f"users.{f.name} ({f.type})")
    for ev in schema.events.values():
        expect(ev.table, ev.user_column, KEY_TYPES, f"the user of {ev.name}")
        expect(ev.table, ev.time_column, FAMILIES["timestamp"], f"the time of {ev.name}")
        for f in ev.fields.values():
            expect(ev.table, f.column, FAMILIES[f.type.kind], f"{ev.name}.{f.name} ({f.type})")
    for link, what in ((schema.tags, "tags"), (schema.consent, "consent")):
        if link:
            expect(link.table, link.user_column, KEY_TYPES, f"the user of {what}")
            expect(link.table, link.value_column, FAMILIES["text"], what)
    return problems


def workspace_url(url: str, root) -> str:
    """A relative DuckDB path in camp.toml is relative to the workspace."""
    from pathlib import Path

    for scheme in ("duckdb:///", "spark+local:///"):  # a Spark folder of Parquet tables too
        if url.startswith(scheme) and not url.startswith("duckdb:///:memory:"):
            rest, query = (url.removeprefix(scheme).split("?", 1) + [""])[:2]
            path = Path(rest)
            if rest and not path.is_absolute():
                return scheme + str((Path(root) / path).resolve()) + (f"?{query}" if query else "")
    return url


def run_urls(ws, data: str | None = None, ledger: str | None = None) -> tuple[str, str]:
    """The warehouse and ledger URLs of a workspace: the given one, else $CAMP_DATA_URL / $CAMP_LEDGER_URL,
    else camp.toml (relative DuckDB paths resolved against the workspace)."""
    import os

    data = data or os.environ.get("CAMP_DATA_URL") or ws.config.data.url
    ledger = ledger or os.environ.get("CAMP_LEDGER_URL") or ws.config.ledger.url
    return workspace_url(data, ws.root), workspace_url(ledger, ws.root)


def dialect_of(url: str) -> str:
    if url.startswith(SPARK_SCHEMES):
        return "spark"
    return "postgres" if url.startswith(("postgresql://", "postgres://")) else "duckdb"
