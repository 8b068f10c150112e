"""The snapshot's JSON payload (runtime.recipients.payloads) is the text the standard encoder writes, whatever the
values (orjson writes it, falling back to the standard encoder where the two would differ), and reads back as
written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.recipients import payloads


def _reference(v):
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"a snapshot column of type {type(v).__name__} cannot be kept as JSON")


def _expected(names: list[str], rows: list) -> list[str]:
    extra = [n for n in names if n not in ("user_id", "held_out")]
    return [json.dumps({n: row[names.index(n)] for n in extra}, ensure_ascii=False, separators=(",", ":"),
                       default=_reference) for row in rows]


zones = st.sampled_from([None, UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"),
                         ZoneInfo("Asia/Kathmandu"), timezone(timedelta(hours=-3, minutes=-30))])
values = st.one_of(
    st.none(), st.booleans(), st.text(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.dates(),
    st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(min_value=datetime(1800, 1, 1)), zones),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=5).flatmap(
    lambda width: st.lists(st.tuples(*[values] * width), min_size=1, max_size=8)))
def test_the_payload_is_the_standard_encoders_text(rows):
    names = ["user_id", "held_out", *[f"u_c{i}" for i in range(len(rows[0]))]]
    full = [("u1", False, *r) for r in rows]
    try:
        want = _expected(names, full)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        with pytest.raises(type(exc)):
            payloads(names, full)
        return
    assert payloads(names, full) == want


def test_columns_of_one_type_and_the_odd_ones():
    names = ["user_id", "held_out", "u_name", "u_score", "u_born", "u_spent", "u_seen"]
    rows: list[tuple] = [(f"u{i}", i % 2 == 0, f"名字{i}", i / 3, date(1990, 1, 1 + i % 28), Decimal("12.50"),
             datetime(2026, 12, 1, 8, 30, i % 60, tzinfo=ZoneInfo("Asia/Shanghai"))) for i in range(500)]
    rows.append(("nan", False, None, float("nan"), None, None, None))  # the standard encoder's NaN, not null
    rows.append(("big", False, "x", 2**80, None, Decimal("1E+3"), datetime(1900, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))))
    got = payloads(names, rows)
    assert got == _expected(names, rows)
    assert '"u_score":NaN' in got[-2] and '"u_score":1208925819614629174706176' in got[-1]
    assert json.loads(got[0]) == {"u_name": "名字0", "u_score": 0.0, "u_born": "1990-01-01", "u_spent": "12.50",
                                  "u_seen": "2026-12-01T08:30:00+08:00"}
    # without the float column, orjson writes every row but the one beyond 64 bits
    names.remove("u_score")
    rows = [(*r[:3], *r[4:]) for r in rows if r[0] != "nan"]
    rows[-1] = (*rows[-1][:2], 2**80, *rows[-1][3:])
    got = payloads(names, rows)
    assert got == _expected(names, rows)
    assert got[-1].startswith('{"u_name":1208925819614629174706176,')
    # and without it, orjson writes every row: datetimes still as isoformat does (orjson's own writes +08:06)
    rows[-1] = (*rows[-1][:2], "x", *rows[-1][3:])
    got = payloads(names, rows)
    assert got == _expected(names, rows)
    assert got[-1].endswith('"u_seen":"1900-01-01T00:00:00+08:05:43"}')


def test_a_type_json_cannot_hold_is_refused_as_before():
    with pytest.raises(TypeError, match="of type timedelta cannot be kept as JSON"):
        payloads(["user_id", "held_out", "u_gap"], [("u1", False, timedelta(days=1))])
    assert payloads(["user_id", "held_out"], [("u1", False)]) == ["{}"]
