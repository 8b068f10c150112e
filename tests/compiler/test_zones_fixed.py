"""compiler.zones.fixed_offset: a zone keeps one UTC offset over a span, or not (the per-exposure windows and the
report's local dates skip their zone conversions only then)."""

from datetime import UTC, datetime, timedelta

from compiler.zones import MAX_FIXED_SPAN, fixed_offset


def _at(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_a_zone_without_daylight_saving_keeps_its_offset():
    assert fixed_offset("Asia/Shanghai", _at(2026, 1, 1), _at(2027, 6, 1)) == timedelta(hours=8)
    assert fixed_offset("UTC", _at(2026, 1, 1), _at(2028, 1, 1)) == timedelta(0)


def test_a_span_over_a_clock_change_has_no_fixed_offset():
    # New York springs forward on 2026-03-08 at 07:00 UTC: a span ending one second after has two offsets
    assert fixed_offset("America/New_York", _at(2026, 3, 1), _at(2026, 3, 8, 7, 0, 1)) is None
    assert fixed_offset("America/New_York", _at(2026, 3, 1), _at(2026, 3, 8, 6, 59, 59)) == timedelta(hours=-5)
    assert fixed_offset("America/New_York", _at(2026, 4, 1), _at(2026, 10, 31)) == timedelta(hours=-4)
    # Lord Howe changes by half an hour
    assert fixed_offset("Australia/Lord_Howe", _at(2026, 3, 1), _at(2026, 5, 1)) is None
    # Shanghai's last daylight saving ended in September 1991
    assert fixed_offset("Asia/Shanghai", _at(1991, 9, 1), _at(1991, 10, 1)) is None


def test_unknown_zones_reversed_and_overlong_spans_are_not_fixed():
    assert fixed_offset("Mars/Olympus", _at(2026, 1, 1), _at(2026, 1, 2)) is None
    assert fixed_offset("UTC", _at(2026, 1, 2), _at(2026, 1, 1)) is None
    assert fixed_offset("UTC", _at(2026, 1, 1), _at(2026, 1, 1) + MAX_FIXED_SPAN + timedelta(hours=1)) is None
