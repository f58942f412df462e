"""Input windows of known models, in tokens, and what they mean in characters.

Used by the ``base`` benchmark method (how much context fits in one prompt) and by the
engine (how much text a sub-LM reads in one prompt, hence the chunk size the root prompt
advises). Figures are the providers' published input windows; ≈ 4 characters a token for
English text and code (the OpenAI and Anthropic rule of thumb).
"""

from __future__ import annotations

__all__ = ["DEFAULT_WINDOW_TOKENS", "WINDOWS", "known_window", "prompt_chars", "window_tokens"]

DEFAULT_WINDOW_TOKENS = 131_072
"""Window assumed for models not in :data:`WINDOWS` (and for the offline policies)."""

WINDOWS: dict[str, int] = {
    "openai:gpt-5": 272_000,
    "openai:gpt-4.1": 1_047_576,
    "openai:gpt-4o": 128_000,
    "openai:o3": 200_000,
    "openai:o4-mini": 200_000,
    "anthropic:claude": 200_000,
}
"""Input windows in tokens by spec prefix (the longest matching prefix wins)."""

MAX_PROMPT_CHARS = 500_000
"""The most text one sub-LM prompt is planned for: the paper's "about 500K characters"
(Zhang, Kraska & Khattab, arXiv 2512.24601, Appendix C), even for larger windows."""


def known_window(spec: str) -> int | None:
    """The input window of ``spec`` in tokens when :data:`WINDOWS` knows it (the longest
    matching prefix), else None."""
    best = max((p for p in WINDOWS if spec.startswith(p)), key=len, default="")
    return WINDOWS[best] if best else None


def window_tokens(spec: str, override: int | None = None) -> int:
    """The input window of ``spec`` in tokens: ``override``, else the longest prefix of
    :data:`WINDOWS`, else :data:`DEFAULT_WINDOW_TOKENS`."""
    if override:
        return override
    return known_window(spec) or DEFAULT_WINDOW_TOKENS


def prompt_chars(spec: str) -> int:
    """How many characters of text one prompt to ``spec`` should carry: half its window at
    ≈ 4 characters a token (the other half for instructions, reasoning and the answer), at
    most :data:`MAX_PROMPT_CHARS`. E.g. 500,000 for ``openai:gpt-5``, 262,144 by default."""
    return min(MAX_PROMPT_CHARS, window_tokens(spec) * 2)
