"""Compatibility layers for code written against other RLM libraries.

:mod:`rlmx.compat.rlms` is a drop-in for the official ``rlms`` package (``from rlm import
RLM`` becomes ``from rlmx.compat.rlms import RLM``). The package sits above the engine, like
:mod:`rlmx.api`, and imports nothing until a submodule is imported.
"""

from __future__ import annotations

__all__: list[str] = []
