"""Prompt templates as data files (``*.md``), formatted with ``str.format``.

Structure follows the RLM paper's system prompt (Zhang, Kraska & Khattab, arXiv 2512.24601,
Appendix C): context type and sizes, REPL functions, the ``repl`` block contract and the
FINAL rules, adapted to rlmx's REPL contract (DESIGN.md). A file may open with an HTML
comment (``<!-- … -->``, its provenance: where it follows the paper and where it departs);
:func:`load_prompt` strips it, so it never reaches a model.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_prompt"]


@cache
def load_prompt(name: str) -> str:
    """The template ``prompts/<name>.md`` without its opening ``<!-- … -->`` comment.
    Raises ``FileNotFoundError`` if absent, ``ValueError`` if that comment never closes."""
    text = resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    if text.startswith("<!--"):
        end = text.find("-->")
        if end < 0:
            raise ValueError(f"prompt {name}.md opens a <!-- comment that never closes")
        text = text[end + 3 :].lstrip("\n")
    return text
