"""Moved to `runtime.ledger.migrations`; this name stays for code that imported it from here."""

from __future__ import annotations

from runtime.ledger.migrations import MIGRATIONS

__all__ = ["MIGRATIONS"]
