"""Head + tail truncation of REPL output returned to the root LM (paper §2: the root LM
only sees a bounded prefix/suffix of what its code prints)."""

from __future__ import annotations

__all__ = ["truncate_output"]


def truncate_output(text: str, max_chars: int = 20_000) -> str:
    """Return ``text`` if it has at most ``max_chars`` characters, else its first and last
    ``max_chars // 2`` characters joined by a marker saying how many characters were cut.

    Raises ``ValueError`` when ``max_chars`` < 2.
    """
    if max_chars < 2:
        raise ValueError("max_chars must be at least 2")
    if len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head
    cut = len(text) - head - tail
    marker = (
        f"\n\n[... {cut:,} of {len(text):,} characters cut: output shows the first {head:,} "
        f"and last {tail:,}; print less, or slice and pass text to llm_query ...]\n\n"
    )
    return text[:head] + marker + text[-tail:]
