"""Identifiers: a prefix, a millisecond timestamp (sortable) and random bits."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """Return ``"<prefix>_<12 hex ms><10 hex random>"``, e.g. ``exe_019a2b3c4d5e8f01a2b3c4``."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(5)}"
