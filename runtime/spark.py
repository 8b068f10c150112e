"""Spark as the warehouse (issue 16): a URL -> a Spark SQL session whose tables are a folder of Parquet files,
and the `Spark` backend class holding every difference of that engine (runtime.ledger.backend's pattern).

    spark+local:///shop-parquet          local[*] in this process, tables from ./shop-parquet (workspace-relative)
    spark+local:////abs/shop?cores=2     local[2], an absolute folder
    spark://HOST:PORT/abs/shop           a standalone cluster's master; the folder must be readable by its executors

Each `<table>.parquet` (a file or a folder of parts) or `<table>/` folder of Parquet files in the folder is a
TEMPORARY VIEW of the session (`camp demo init --url spark+local:///...` writes them from the DuckDB demo shop).
One SparkContext (a JVM: seconds to start) serves the whole process; each `connect` is a new session of it, with
its own temporary views and settings, pinned to UTC (spark.sql.session.timeZone). The SQL camp compiles does not
depend on that zone (compiler.sql: `_local_date`), tests run it with Asia/Shanghai too.

Results stream: `toLocalIterator` brings one partition at a time to Python (never a collect() of every row), and
timestamps arrive as UTC-aware datetimes (pyspark would make naive ones in the Python process's local zone; they
are read as microseconds since the epoch instead, which is exact in any session or process zone).

The warehouse is read: no ledger lives here, and nothing is written to the shop's tables; the ledger's facts a
query reads (manual tags, redeemed coupons, label history, a journey's cohort) become temporary views.
"""

from __future__ import annotations

import itertools
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from runtime.ledger.backend import Backend, _given_frame

_LOCK = threading.Lock()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# pyspark 4.3 warns on import under pandas 3; camp hands it no pandas objects (rows are tuples)
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


@dataclass(frozen=True)
class SparkURL:
    """What a Spark warehouse URL says: the master to run on and the folder of the tables."""

    master: str
    folder: str
    local: bool

    @staticmethod
    def parse(url: str) -> SparkURL:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if url.startswith("spark+local://"):
            cores = query.get("cores", ["*"])[0]
            if cores != "*" and not (cores.isdigit() and int(cores) > 0):
                raise ValueError(f"{url!r}: cores must be a positive number or *")
            folder = url.removeprefix("spark+local://").split("?")[0].removeprefix("/")
            return SparkURL(f"local[{cores}]", folder, True)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r}: a Spark master URL is spark://HOST:PORT/folder")
        return SparkURL(f"spark://{parts.hostname}:{parts.port}", parts.path, False)


def connect_spark(url: str) -> Any:
    """A new session (own temporary views, UTC) of the process's SparkContext, the folder's tables registered."""
    where = SparkURL.parse(url)
    session = _context(where).newSession()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    folder = Path(where.folder)
    if where.folder and not folder.is_dir() and where.local:
        raise FileNotFoundError(f"no folder {folder} (the Parquet tables of {url}); make one with "
                                f"`camp demo init --url {url}`")
    for name, path in tables_in(folder) if folder.is_dir() else []:
        session.read.parquet(str(path)).createOrReplaceTempView(name)
    return session


def tables_in(folder: Path) -> list[tuple[str, Path]]:
    """(table, path) for each `<table>.parquet` file or folder, or folder holding `*.parquet` parts, by name."""
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.suffix == ".parquet":
            out.append((entry.stem, entry))
        elif entry.is_dir() and any(entry.glob("*.parquet")):
            out.append((entry.name, entry))
    return out


def _context(where: SparkURL) -> Any:
    """The process's one SparkSession (the JVM starts on first use: seconds), made for `where.master`."""
    from pyspark.sql import SparkSession

    with _LOCK:
        log = Path(__file__).with_name("spark-log4j2.properties")
        builder = SparkSession.builder.master(where.master).appName("camp") \
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false") \
            .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log}") \
            .config("spark.sql.session.timeZone", "UTC") \
            .config("spark.driver.memory", os.environ.get("CAMP_SPARK_DRIVER_MEMORY", "4g"))  # 2g lost 1M-row results
        if where.local:  # 200 shuffle partitions (the default, for clusters) are 200 tasks per stage on a laptop
            builder = builder.config("spark.sql.shuffle.partitions", str(2 * (os.cpu_count() or 2)))
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        return session


class SparkCursor:
    """A DB-API-like view of a Spark SQL result: description, fetchone, fetchmany, fetchall; rows arrive one
    partition at a time (toLocalIterator), timestamps as UTC-aware datetimes."""

    def __init__(self, frame: Any):
        from pyspark.sql.types import TimestampType

        fields = frame.schema.fields
        self.description = [(f.name, f.dataType.simpleString(), None, None, None, None, None) for f in fields]
        self._stamps = [i for i, f in enumerate(fields) if isinstance(f.dataType, TimestampType)]
        if self._stamps:  # microseconds since the epoch: exact, and no session or process zone reads them
            from pyspark.sql.functions import unix_micros

            frame = frame.select(*[unix_micros(frame[i]).alias(f.name) if i in self._stamps else frame[i]
                                   for i, f in enumerate(fields)])
        self._frame = frame
        self._rows: Iterator[Any] | None = None

    def _iter(self) -> Iterator[tuple]:
        rows = self._rows
        if rows is None:
            rows = self._rows = self._frame.toLocalIterator(prefetchPartitions=True)
        stamps = self._stamps
        for row in rows:
            if stamps:
                values = list(row)
                for i in stamps:
                    if values[i] is not None:
                        values[i] = EPOCH + timedelta(microseconds=values[i])
                yield tuple(values)
            else:
                yield tuple(row)

    def fetchone(self) -> tuple | None:
        return next(self._iter(), None)

    def fetchmany(self, size: int) -> list[tuple]:
        return list(itertools.islice(self._iter(), size))

    def fetchall(self) -> list[tuple]:
        return list(self._iter())


class Spark(Backend):
    """A read-only warehouse: statements are Spark SQL (parameters as `?` markers), the session's temporary views
    stand for the TEMP tables camp fills, and it never holds a ledger."""

    name = "spark"
    mark = "?"
    one_writer = False
    holds_ledger: ClassVar[bool] = False

    def execute(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        frame = conn.sql(sql, args=list(params)) if params is not None else conn.sql(sql)
        return SparkCursor(frame)

    def executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        raise ValueError("a Spark warehouse is read-only for camp: it writes nothing to the shop's tables")

    def in_list(self, column: str) -> str:
        return f"ARRAY_CONTAINS(?, {column})"

    def columns(self, conn: Any) -> list[tuple[str, str, str]]:
        """(table, column, SQL type) of every table and temporary view the session sees."""
        out = []
        for t in conn.catalog.listTables():
            for f in conn.table(t.name).schema.fields:
                out.append((t.name, f.name, f.dataType.simpleString().upper()))
        return out

    def fresh_temp_table(self, conn: Any, name: str, columns: str) -> None:
        """An empty temporary view with these columns (written as for DuckDB/PostgreSQL: text, timestamptz, ...)."""
        conn.createDataFrame([], schema=_spark_schema(columns)).createOrReplaceTempView(name)

    def bulk_insert(self, conn: Any, table: str, columns: list[str], rows: Any) -> None:
        """Rows added to a temporary view (fresh_temp_table's): the union is checkpointed, so the view never reads
        itself."""
        if len(rows) == 0:
            return
        from pyspark.sql.types import StructType

        if _given_frame(rows):
            rows = rows[columns].astype(object).where(rows[columns].notna(), None).itertuples(index=False, name=None)
        have = conn.table(table)
        schema = StructType([have.schema[c] for c in columns])
        new = conn.createDataFrame([tuple(_plain(v) for v in r) for r in rows], schema=schema)
        have.unionByName(new).localCheckpoint().createOrReplaceTempView(table)

    def frame(self, conn: Any, sql: str, params: Iterable | None = None) -> Any:
        import pandas as pd

        cur = self.execute(conn, sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    def close(self, conn: Any) -> None:
        """The session's views go; the SparkContext stays for the process's next session."""
        for t in conn.catalog.listTables():
            if t.isTemporary:
                conn.catalog.dropTempView(t.name)


def _plain(v: Any) -> Any:
    """pandas' Timestamp is a datetime pyspark takes; NaT is None."""
    if v is not None and type(v).__name__ == "Timestamp":
        return v.to_pydatetime()
    return v


def _spark_schema(columns: str) -> str:
    """`user_id text, since timestamptz` (the TEMP tables' column definitions) as a Spark DDL schema."""
    import sqlglot
    from sqlglot import exp

    create = sqlglot.parse_one(f"CREATE TABLE t ({columns})", read="postgres")
    assert isinstance(create.this, exp.Schema)
    return ", ".join(f"`{c.name}` {c.args['kind'].sql(dialect='spark')}" for c in create.this.expressions)


def export_parquet(src: Any, tables: Iterable[str], folder: Path) -> None:
    """DuckDB tables -> `<folder>/<table>.parquet` (replaced), what a Spark warehouse URL reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        path = folder / f"{table}.parquet"
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        quoted = str(path).replace("'", "''")
        src.execute(f"COPY \"{table}\" TO '{quoted}' (FORMAT parquet)")
