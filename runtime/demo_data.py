"""A deterministic synthetic shop for the bundled schema: users with cities, birthdays and time
zones; orders with brands, categories, amounts and coupon use; visits; manual tags; consent; a shares table
and a clicks table (empty: the shop's red packet shares and clicks on messages arrive after campaigns run).

Generated in bulk by DuckDB SQL (no Python loop per row): every value is a function of
(row, seed) through DuckDB's hash, so the same --users and --seed give the same shop.
For PostgreSQL the tables are generated in DuckDB and streamed over with COPY; for Spark they are written as a
folder of Parquet files (runtime/spark.py).
About 6 orders (one user in eight buys 22 more), 1.5 visits and 0.4 tags per user; a fifth of
users stopped ordering 190 days before DEMO_TODAY, where all histories end.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.warehouse import Warehouse, connect, dialect_of

DEMO_TODAY = "2026-12-01 00:00:00+00"


def _pick(items: Sequence[str | None], h: str) -> str:
    def lit(v):
        return "NULL" if v is None else "'" + v.replace("'", "''") + "'"
    return f"([{', '.join(lit(v) for v in items)}])[1 + ({h} % {len(items)})::INTEGER]"


def _h(seed: int, *parts: str | int) -> str:
    return "hash(" + ", ".join(str(p) for p in parts) + f", {int(seed)})"


def statements(users: int, seed: int, orders_base: int = 8, visits_base: int = 4) -> dict[str, str]:
    """table -> CREATE TABLE ... AS SELECT (DuckDB SQL).

    A user has (hash % orders_base) orders, and one user in eight has 2.75 x orders_base more;
    (hash % visits_base) visits. The defaults give about 6.25 orders and 1.5 visits per user.
    """
    s = int(seed)
    ob, vb = int(orders_base), int(visits_base)
    heavy = ob * 11 // 4
    names = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "Emma", "Liam", None]
    cities = ["北京", "北京", "上海", "上海", "广州", "深圳", "杭州", "成都", "武汉", None]
    zones = ["Asia/Shanghai"] * 6 + ["Asia/Tokyo", "Europe/London", "America/New_York", None]
    brands = ["Shiseido", "Lancôme", "Estée Lauder", "SK-II", "Uniqlo", "Nike", "完美日记", "花西子"]
    cats = ["beauty", "beauty", "beauty", "apparel", "shoes", "home"]
    tags = ["vip", "complained", "skincare_lover", "makeup_fan", "fragrance_fan", "employee"]
    days = 400
    return {
        "users": f"""
CREATE TABLE users AS
SELECT i::BIGINT AS user_id,
  {_pick(names, _h(s, 'i', 1))} AS name,
  {_pick(cities, _h(s, 'i', 2))} AS city,
  {_pick(['f', 'f', 'm', 'unknown'], _h(s, 'i', 3))} AS gender,
  CASE WHEN {_h(s, 'i', 4)} % 20 = 0 THEN NULL
       ELSE DATE '1960-01-01' + ({_h(s, 'i', 5)} % 17000)::INTEGER END AS birthday,
  TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds(({_h(s, 'i', 6)} % 215000000)::BIGINT) AS registered_at,
  {_pick(['normal'] * 6 + ['silver'] * 3 + ['gold'], _h(s, 'i', 7))} AS member_level,
  (({_h(s, 'i', 8)} % 200000) / 100)::DECIMAL(18, 2) AS balance,
  {_pick(zones, _h(s, 'i', 9))} AS timezone,
  '138' || lpad((({_h(s, 'i', 10)}) % 100000000)::VARCHAR, 8, '0') AS phone,
  CASE WHEN {_h(s, 'i', 11)} % 4 = 0 THEN NULL ELSE 'user' || i || '@example.com' END AS email
FROM range(1, {int(users)} + 1) t(i)""",
        "orders": f"""
CREATE TABLE orders AS
SELECT u.user_id,
  TIMESTAMPTZ '{DEMO_TODAY}' - to_seconds(({_h(s, 'u.user_id', 'j', 20)} % {days * 86400})::BIGINT)
    - CASE WHEN {_h(s, 'u.user_id', 27)} % 5 = 0 THEN INTERVAL 190 DAY ELSE INTERVAL 0 DAY END AS created_at,
  ((20 + {_h(s, 'u.user_id', 'j', 21)} % 80000) / 100)::DECIMAL(18, 2) AS amount,
  {_pick(brands, _h(s, 'u.user_id', 'j', 22))} AS brand,
  {_pick(cats, _h(s, 'u.user_id', 'j', 23))} AS category,
  'shop_' || ({_h(s, 'u.user_id', 'j', 24)} % 12)::VARCHAR AS shop,
  {_h(s, 'u.user_id', 'j', 25)} % 3 = 0 AS coupon_used,
  NULL::VARCHAR AS coupon_id
FROM users u, range(0, {ob + heavy}) r(j)
WHERE j < {_h(s, 'u.user_id', 26)} % {ob} + CASE WHEN {_h(s, 'u.user_id', 28)} % 8 = 0 THEN {heavy} ELSE 0 END""",
        "visits": f"""
CREATE TABLE visits AS
SELECT u.user_id,
  TIMESTAMPTZ '{DEMO_TODAY}' - to_seconds(({_h(s, 'u.user_id', 'j', 30)} % {days * 86400})::BIGINT) AS visited_at,
  {_pick(['web', 'app', 'app', 'mini_program'], _h(s, 'u.user_id', 'j', 31))} AS source,
  ((5 + {_h(s, 'u.user_id', 'j', 32)} % 900))::DECIMAL(18, 4) AS seconds
FROM users u, range(0, {vb}) r(j)
WHERE j < {_h(s, 'u.user_id', 33)} % {vb}""",
        "shares": """
CREATE TABLE shares AS
SELECT NULL::BIGINT AS user_id, NULL::TIMESTAMPTZ AS shared_at, NULL::VARCHAR AS share_id, NULL::VARCHAR AS packet
WHERE false""",
        "clicks": """
CREATE TABLE clicks AS
SELECT NULL::BIGINT AS user_id, NULL::TIMESTAMPTZ AS clicked_at, NULL::VARCHAR AS click_id,
  NULL::VARCHAR AS campaign, NULL::VARCHAR AS channel
WHERE false""",
        "user_tags": f"""
CREATE TABLE user_tags AS
SELECT DISTINCT u.user_id, {_pick(tags, _h(s, 'u.user_id', 'j', 40))} AS tag
FROM users u, range(0, 2) r(j)
WHERE {_h(s, 'u.user_id', 'j', 41)} % 5 = 0""",
        "consent": f"""
CREATE TABLE consent AS
SELECT u.user_id, c.channel
FROM users u, (VALUES ('push'), ('sms'), ('email')) c(channel)
WHERE {_h(s, 'u.user_id', 'c.channel', 50)} % 10 < (CASE c.channel WHEN 'push' THEN 9 WHEN 'sms' THEN 6 ELSE 7 END)""",
    }


@dataclass
class Made:
    counts: dict[str, int]
    seconds: float


def make_shop(url: str, users: int = 10_000, seed: int = 1, orders_base: int = 8, visits_base: int = 4) -> Made:
    """Create (replace) the demo tables at `url`."""
    if not 1 <= users <= 50_000_000:
        raise ValueError("--users must be between 1 and 50,000,000")
    start = time.perf_counter()
    if dialect_of(url) == "spark":  # a folder of Parquet tables, written from the same DuckDB shop
        from pathlib import Path

        from runtime.spark import SparkURL, export_parquet

        scratch = connect("duckdb:///:memory:")
        try:
            _generate(scratch, users, seed, orders_base, visits_base)
            export_parquet(scratch.conn, statements(1, 1), Path(SparkURL.parse(url).folder))
        finally:
            scratch.close()
    target = connect(url)
    try:
        if target.dialect == "duckdb":
            _generate(target, users, seed, orders_base, visits_base)
        elif target.dialect == "postgres":
            scratch = connect("duckdb:///:memory:")
            try:
                _generate(scratch, users, seed, orders_base, visits_base)
                _copy_to_postgres(scratch, target)
            finally:
                scratch.close()
        counts = {t: target.rows(f"SELECT COUNT(*) FROM {_quoted(t, target.dialect)}")[0][0] for t in statements(1, 1)}
    finally:
        target.close()
    return Made(counts, time.perf_counter() - start)


def _quoted(name: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def _generate(wh: Warehouse, users: int, seed: int, orders_base: int = 8, visits_base: int = 4) -> None:
    for table, sql in statements(users, seed, orders_base, visits_base).items():
        wh.execute(f"DROP TABLE IF EXISTS {table}")
        wh.execute(sql)


PG_TYPES = {"users": "user_id bigint, name text, city text, gender text, birthday date, registered_at timestamptz, "
                     "member_level text, balance numeric(18,2), timezone text, phone text, email text",
            "orders": "user_id bigint, created_at timestamptz, amount numeric(18,2), brand text, category text, "
                      "shop text, coupon_used boolean, coupon_id text",
            "visits": "user_id bigint, visited_at timestamptz, source text, seconds numeric(18,4)",
            "shares": "user_id bigint, shared_at timestamptz, share_id text, packet text",
            "clicks": "user_id bigint, clicked_at timestamptz, click_id text, campaign text, channel text",
            "user_tags": "user_id bigint, tag text",
            "consent": "user_id bigint, channel text"}


def _copy_to_postgres(src: Warehouse, dst: Warehouse) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for table, columns in PG_TYPES.items():
            path = os.path.join(tmp, f"{table}.csv")
            src.execute(f"COPY {table} TO '{path}' (FORMAT csv, HEADER false, FORCE_QUOTE *)")
            dst.execute(f'DROP TABLE IF EXISTS "{table}"')
            dst.execute(f'CREATE TABLE "{table}" ({columns})')
            with dst.conn.cursor() as cur, cur.copy(f'COPY "{table}" FROM STDIN (FORMAT csv)') as copy, \
                    open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
            dst.execute(f'ANALYZE "{table}"')
