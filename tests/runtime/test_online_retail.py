"""The Online Retail example: camp's audiences over the real data equal an independent pandas
computation from the raw CSV (its own cleaning, exact Decimal money, London time)."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from compiler import ir as I
from compiler.check import check_workspace
from compiler.sql import AudienceSQL
from compiler.workspace import load_workspace
from runtime.warehouse import compare_schema, connect
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "online_retail"
LONDON = ZoneInfo("Europe/London")
AS_OF = datetime(2011, 12, 10, 0, 0, tzinfo=LONDON)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("load_retail", EXAMPLE / "load.py")
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    url = f"duckdb:///{tmp_path_factory.mktemp('retail') / 'retail.duckdb'}"
    counts = loader.load(EXAMPLE / "data" / "online_retail.csv.gz", url)
    assert counts == {"customers": 4372, "invoice_lines": 406829}
    return url


@pytest.fixture(scope="module")
def program():
    result = check_workspace(load_workspace(EXAMPLE))
    assert result.diagnostics == []
    return result.program


@pytest.fixture(scope="module")
def expected():
    """Everything computed with pandas, straight from the CSV."""
    raw = pd.read_csv(EXAMPLE / "data" / "online_retail.csv.gz", dtype=str, keep_default_na=False)
    raw = raw[raw["CustomerID"] != ""].copy()
    raw["customer"] = raw["CustomerID"].astype(float).astype(int)
    raw["when"] = pd.to_datetime(raw["InvoiceDate"]).dt.tz_localize("Europe/London")
    raw["amount"] = [Decimal(q) * Decimal(p) for q, p in zip(raw["Quantity"], raw["UnitPrice"], strict=True)]
    raw["cancelled"] = raw["InvoiceNo"].str.startswith("C")
    as_of = pd.Timestamp(AS_OF)

    def since(days: int) -> pd.DataFrame:
        return raw[(raw["when"] >= as_of - timedelta(days=days)) & (raw["when"] < as_of)]

    ok = raw[~raw["cancelled"]]
    ok30, ok90, ok365 = (since(d)[~since(d)["cancelled"]] for d in (30, 90, 365))
    latest = raw.sort_values(["customer", "when", "Country"], ascending=[True, False, True]).groupby("customer").first()
    country = latest["Country"]
    customers = set(raw["customer"])
    recent = set(ok30["customer"])
    frequent = {c for c, n in ok365.groupby("customer")["InvoiceNo"].nunique().items() if n >= 10}
    big = {c for c, s in ok365.groupby("customer")["amount"].apply(lambda x: sum(x, Decimal(0))).items()
           if s >= 2000}
    champions = recent & frequent & big
    first_seen = raw.groupby("customer")["when"].min()
    new = {c for c, t in first_seen.items() if as_of - timedelta(days=60) <= t < as_of}
    active, cooling, lapsed_any = set(ok30["customer"]), set(ok90["customer"]), set(ok365["customer"])
    lifecycle = {}
    for c in customers:
        lifecycle[c] = ("new" if c in new else "active" if c in active else "cooling" if c in cooling
                        else "lapsed" if c in lapsed_any else "gone")
    refunds = since(365)[since(365)["cancelled"]].groupby("customer")["amount"].apply(lambda x: sum(x, Decimal(0)))
    big_refund = {c for c, s in refunds.items() if s < -100}
    uk = {c for c in customers if country[c] == "United Kingdom"}
    assert len(ok) > 0
    return {
        "uk_champions": champions & uk,
        "lapsed_abroad_matched": {c for c in customers if lifecycle[c] == "lapsed" and c not in uk},
        "lapsed_abroad_excluded": {c for c in customers if lifecycle[c] == "lapsed" and c not in uk} & big_refund,
        "germany_france": {c for c in customers if country[c] in ("Germany", "France")} & lapsed_any,
        "lifecycle": lifecycle,
    }


def _sections(program, url, name):
    wh = connect(url)
    c = AudienceSQL(program, AS_OF, "duckdb")
    rows = wh.rows(c.sql(c.campaign(program.campaigns[name]), pretty=False))
    wh.close()
    return {r[0] for r in rows}, {r[0] for r in rows if r[1]}


def test_schema_matches_the_loaded_database(db, program):
    wh = connect(db)
    assert compare_schema(wh, program.schema) == []
    wh.close()


def test_rfm_champions_in_the_uk(db, program, expected):
    matched, _ = _sections(program, db, "uk_champions")
    assert matched == expected["uk_champions"] and len(matched) > 100


def test_lapsed_abroad_with_exclusion(db, program, expected):
    matched, excluded = _sections(program, db, "lapsed_abroad")
    assert matched == expected["lapsed_abroad_matched"]
    assert excluded == expected["lapsed_abroad_excluded"]


def test_countries(db, program, expected):
    matched, _ = _sections(program, db, "germany_france")
    assert matched == expected["germany_france"]


def test_lifecycle_label_counts(db, program, expected):
    wh = connect(db)
    for label in program.classifications["lifecycle"].labels:
        c = AudienceSQL(program, AS_OF, "duckdb")
        got = {r[0] for r in wh.rows(c.sql(c.condition(I.LabelIs("lifecycle", (label,))), pretty=False))}
        want = {u for u, lab in expected["lifecycle"].items() if lab == label}
        assert got == want, label
    wh.close()
