"""Prompt templates as data files (``*.md``), formatted with ``str.format``.

Structure follows the RLM paper's system prompt (Zhang, Kraska & Khattab, arXiv 2512.24601,
Appendix C): context type and sizes, REPL functions, the ``repl`` block contract and the
FINAL rules, adapted to rlmx's REPL contract (DESIGN.md).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_prompt"]


@cache
def load_prompt(name: str) -> str:
    """Return the template ``prompts/<name>.md``. Raises ``FileNotFoundError`` if absent."""
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
