"""Parsing a root-LM response into code and/or a final answer.

Contract (paper, Appendix C): the root LM writes one fenced block tagged ``repl`` per turn;
only the first is run. For robustness a block tagged ``python``/``py`` is accepted when
there is no ``repl`` block. Outside code, a line ``FINAL(...)`` or ``FINAL_VAR(name)``
ends the execution as in the paper's reference loop.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["ParsedResponse", "parse_response", "step_code"]

_FENCE = re.compile(r"```[ \t]*(?P<tag>[A-Za-z0-9_+-]*)[^\n]*\n(?P<body>.*?)(?:\n[ \t]*```|\Z)", re.S)
_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)
_FINAL_VAR = re.compile(r"^[ \t]*FINAL_VAR\(\s*['\"]?(?P<name>[A-Za-z_]\w*)['\"]?\s*\)[ \t]*$", re.M)
_FINAL = re.compile(r"^[ \t]*FINAL\((?P<body>.*)\)[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class ParsedResponse:
    """``code``: the first ``repl`` block's source (None when absent); ``final_text``: the
    answer of a prose ``FINAL(...)``; ``final_var``: the name in a prose ``FINAL_VAR(...)``;
    ``prose``: the response with code blocks removed (stripped)."""

    code: str | None
    final_text: str | None
    final_var: str | None
    prose: str


def _unquote(body: str) -> str:
    body = body.strip()
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        try:
            value = ast.literal_eval(body)
        except (ValueError, SyntaxError):
            return body[1:-1]
        return str(value)
    return body


def parse_response(text: str) -> ParsedResponse:
    """Split a root-LM response (``str``) into code, prose, and any prose FINAL.

    Never raises: a response with neither code nor FINAL yields all-None fields except
    ``prose``, which the engine feeds back as an observation.
    """
    blocks = [(m.group("tag").lower(), m.group("body")) for m in _FENCE.finditer(text)]
    code = next((b for t, b in blocks if t == "repl"), None)
    if code is None:
        code = next((b for t, b in blocks if t in ("python", "py", "python3")), None)
    prose = _FENCE.sub("", text).strip()
    final_text = final_var = None
    if code is None or not code.strip():
        code = None
        m = _FINAL_VAR.search(prose)
        if m:
            final_var = m.group("name")
        else:
            m2 = _FINAL.search(prose)
            if m2:
                final_text = _unquote(m2.group("body"))
    return ParsedResponse(code=code, final_text=final_text, final_var=final_var, prose=prose)


def step_code(text: str) -> str:
    """The code a runtime-mode step runs: ``text`` itself (bare code), or, when it holds a
    fenced block, the block a root LM's response would run (the first ``repl`` block, else
    ``python``); a prose ``FINAL(...)``/``FINAL_VAR(...)`` with no block becomes that call."""
    if not _FENCE_LINE.search(text):
        return text
    parsed = parse_response(text)
    if parsed.code is not None:
        return parsed.code
    if parsed.final_var is not None:
        return f"FINAL_VAR({parsed.final_var!r})"
    if parsed.final_text is not None:
        return f"FINAL({parsed.final_text!r})"
    return text
