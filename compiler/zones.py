"""Time zone name -> ZoneInfo, or None when the name is not a usable zone.

Shared by the checker (`tz "..."` in files, the workspace zone in camp.toml) and the runtime (a user's
`timezone` field), so both agree on what a zone is. ZoneInfo fails in many ways on bad names: not
found (KeyError), a folder such as "America" (IsADirectoryError when the tzdata package is used),
absolute or unnormalised paths (ValueError), NUL or lone surrogates (ValueError/UnicodeError), names
too long for the file system (OSError). Every one of them means "not a zone" here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MAX_ZONE_NAME = 64  # the longest IANA name is 32 characters ("America/Argentina/ComodRivadavia")


@lru_cache(maxsize=4096)
def _load(name: str) -> ZoneInfo | None:
    if not name or len(name) > MAX_ZONE_NAME or "\x00" in name or not name.isprintable():
        return None
    try:
        return ZoneInfo(name)
    except (LookupError, ValueError, OSError, TypeError):  # ZoneInfoNotFoundError is a KeyError
        return None


def zone_or_none(name: object) -> ZoneInfo | None:
    """The zone called `name`; None for anything that is not one (never raises)."""
    return _load(name) if isinstance(name, str) else None


MAX_FIXED_SPAN = timedelta(days=3 * 366)  # longer spans are not searched for offset changes (hourly steps)


def fixed_offset(zone: str, start: datetime, end: datetime) -> timedelta | None:
    """The zone's one UTC offset over [start, end] when its clocks do not change in that span (no daylight saving,
    no new standard offset), else None (also for a span over MAX_FIXED_SPAN or a name that is not a zone). Over
    such a span a wall-clock sum (t + 14 days on the zone's clock) is the plain sum, and a local date is the date
    of the instant shifted by the offset, which engines compute without a zone conversion per row. Sampled every
    hour: no zone has ever changed its clocks twice within an hour."""
    z = zone_or_none(zone)
    if z is None or end < start or end - start > MAX_FIXED_SPAN:
        return None
    t, last = start.astimezone(UTC), end.astimezone(UTC)
    offset = t.astimezone(z).utcoffset()
    while t < last:
        t = min(t + timedelta(hours=1), last)
        if t.astimezone(z).utcoffset() != offset:
            return None
    return offset
