"""Integrations of rlmx into other frameworks (each an optional extra; nothing is imported
until a submodule is). See docs/compat.md."""

from __future__ import annotations

__all__: list[str] = []
