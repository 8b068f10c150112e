"""Benchmark: "user_id is one of these users" on a PostgreSQL ledger, as a list parameter (`= ANY(array)`) against a
TEMP table made anew for the query (what `Connection.among` does on DuckDB above MANY ids), medians of --runs.

    python bench/among_pg.py [--url postgresql://postgres@127.0.0.1:5432/test] [--runs 7]

A scratch schema gets a coupons-like table of 400,000 rows for 200,000 users, indexed on user_id (as camp_coupons
is); each query names k of those users (2,000, 10,000, 75,000) and counts their rows. Both forms run inside a
transaction, as a batch's reads do; the schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

import psycopg


def median_ms(f, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    schema = f"bench_among_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        try:
            con.execute(f"SET search_path TO {schema}")
            con.execute("CREATE TABLE c (user_id text NOT NULL, code text NOT NULL)")
            con.execute("INSERT INTO c SELECT 'u' || (g % 200000), 'X' FROM generate_series(1, 400000) g")
            con.execute("CREATE INDEX c_user ON c (user_id)")
            con.execute("ANALYZE c")
            rnd = random.Random(1)
            print("| users | list parameter (ms) | TEMP table (ms) |")
            print("| ---: | ---: | ---: |")
            for k in (2_000, 10_000, 75_000):
                users = [f"u{i}" for i in rnd.sample(range(200_000), k)]

                def listed(users=users) -> None:
                    with con.transaction():
                        con.execute("SELECT count(*) FROM c WHERE user_id = ANY(%s)", (users,)).fetchone()

                def tabled(users=users) -> None:
                    with con.transaction():
                        con.execute("DROP TABLE IF EXISTS pg_temp.ids")
                        con.execute("CREATE TEMP TABLE ids (v text)")
                        with con.cursor() as cur, cur.copy("COPY ids (v) FROM STDIN") as copy:
                            for u in users:
                                copy.write_row((u,))
                        con.execute("SELECT count(*) FROM c WHERE user_id IN (SELECT v FROM ids)").fetchone()

                listed()  # warm both
                tabled()
                print(f"| {k:,} | {median_ms(listed, args.runs)} | {median_ms(tabled, args.runs)} |")
        finally:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
