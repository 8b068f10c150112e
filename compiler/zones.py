"""Time zone name -> ZoneInfo, or None when the name is not a usable zone.

Shared by the checker (`tz "..."` in files, the workspace zone in camp.toml) and the runtime (a user's
`timezone` field), so both agree on what a zone is. ZoneInfo fails in many ways on bad names: not
found (KeyError), a folder such as "America" (IsADirectoryError when the tzdata package is used),
absolute or unnormalised paths (ValueError), NUL or lone surrogates (ValueError/UnicodeError), names
too long for the file system (OSError). Every one of them means "not a zone" here.
"""

from __future__ import annotations

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
