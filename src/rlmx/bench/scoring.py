"""Scorers: one per ``answer_type``, each returning a score in [0, 1].

* ``substring`` (``sniah``): 1 when the gold value occurs in the answer (RULER's string
  match, Hsieh et al., 2024), else 0.
* ``numeric`` (``oolong``): ``0.75 ** |gold − answer|`` (RLM paper §3, after OOLONG); the
  answer's number is the one after the last ``Answer:``, else the last number in the text;
  none gives 0.
* ``label`` / ``comparison`` (``oolong``): exact match (paper §3) after normalising case,
  quotes and punctuation, on the text after the last ``Label:`` / ``Answer:``; for a
  comparison, the one relation phrase (``more common than``, ``less common than``,
  ``same frequency as``) the answer states.
* ``pairs`` (``oolong-pairs``): F1 of the set of ``(u1, u2)`` pairs in the answer against
  the gold pairs (paper §3); both empty gives 1.
* ``choice`` (``codeqa``): accuracy — 1 when the chosen letter is the gold one. The choice
  is ``Answer: X``, else a lone letter, else the one option whose text the answer quotes.
* ``exact`` (``docqa``): normalised exact match — 1 when the answer (the text after the last
  ``Answer:``, else the whole answer; or its first line) equals one of the task's accepted
  answers (``meta["accepted"]``, else the gold) after normalising case, whitespace, quotes,
  backticks and a trailing period.

:func:`evidence_cited` is ``docqa``'s second figure: 1 when every piece of the task's
evidence lies inside a citation of the evidence's document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "choice_letter",
    "evidence_cited",
    "normalise_answer",
    "pairs_f1",
    "parse_number",
    "parse_pairs",
    "score",
    "score_choice",
    "score_comparison",
    "score_exact",
    "score_label",
    "score_numeric",
    "score_substring",
]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_RELATIONS = ("more common than", "less common than", "same frequency as")


def score_substring(answer: str, gold: str) -> float:
    return 1.0 if gold and gold in answer else 0.0


def _after_marker(answer: str, markers: Sequence[str]) -> str | None:
    best = -1
    for m in markers:
        i = answer.lower().rfind(m.lower())
        if i >= 0 and i + len(m) > best:
            best = i + len(m)
    return None if best < 0 else answer[best:]


def parse_number(answer: str) -> float | None:
    """The answer's number (see module doc), or None."""
    tail = _after_marker(answer, ["Answer:"])
    for text in ([tail] if tail is not None else []) + [answer]:
        found = _NUMBER.findall(text)
        if found:
            pick = found[0] if text is tail else found[-1]
            try:
                return float(pick.replace(",", ""))
            except ValueError:
                continue
    return None


def score_numeric(answer: str, gold: str | float) -> float:
    got = parse_number(answer)
    if got is None:
        return 0.0
    return float(0.75 ** abs(float(gold) - got))


def _norm(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[\"'`*_\[\]().:;,!?]", " ", text)
    return " ".join(text.split())


def score_label(answer: str, gold: str) -> float:
    tail = _after_marker(answer, ["Label:", "Answer:"])
    text = tail if tail is not None else answer
    first = text.strip().splitlines()[0] if text.strip() else ""
    return 1.0 if _norm(first) == _norm(gold) or _norm(text) == _norm(gold) else 0.0


def score_comparison(answer: str, gold: str) -> float:
    tail = _after_marker(answer, ["Answer:"])
    text = _norm(tail if tail is not None else answer)
    stated = [r for r in _RELATIONS if r in text]
    return 1.0 if stated == [gold] else 0.0


_PAIR = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def parse_pairs(answer: str) -> set[tuple[int, int]]:
    """Unordered pairs ``(lower, higher)`` written as ``(a, b)`` in the answer."""
    out = set()
    for a, b in _PAIR.findall(answer):
        x, y = int(a), int(b)
        if x != y:
            out.add((min(x, y), max(x, y)))
    return out


def pairs_f1(answer: str, gold: Sequence[Sequence[int]]) -> float:
    got = parse_pairs(answer)
    want = {(min(a, b), max(a, b)) for a, b in gold}
    if not got and not want:
        return 1.0
    hit = len(got & want)
    if hit == 0:
        return 0.0
    precision, recall = hit / len(got), hit / len(want)
    return 2 * precision * recall / (precision + recall)


def choice_letter(answer: str, options: Sequence[str] = ()) -> str | None:
    """The option letter the answer picks (see module doc), or None when none or several."""
    m = re.findall(r"(?i:answer)\s*(?:is)?\s*[:=]?\s*\(?\b([A-D])\b\)?", answer)
    if m:
        return m[-1].upper()
    lone = re.fullmatch(r"\s*\(?([A-D])\)?[.):]?\s*", answer)
    if lone:
        return lone.group(1)
    lead = re.match(r"\s*\(?([A-D])\)\s", answer)
    if lead:
        return lead.group(1)
    quoted = [i for i, o in enumerate(options) if o and o in answer]
    if len(quoted) == 1:
        return "ABCD"[quoted[0]]
    return None


def score_choice(answer: str, gold: str, options: Sequence[str] = ()) -> float:
    return 1.0 if choice_letter(answer, options) == gold else 0.0


def normalise_answer(text: str) -> str:
    """Lower case, one space between words, no surrounding quotes, backticks or ``*``, no
    trailing ``.``: ``" `Foo Bar`. "`` → ``"foo bar"``."""
    text = " ".join(text.replace("’", "'").split()).lower()
    for _ in range(3):
        text = text.strip().rstrip(".").strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`*":
            text = text[1:-1]
    return text.strip()


def score_exact(answer: str, accepted: Sequence[str]) -> float:
    """1.0 when the answer matches one of ``accepted`` (see the module doc), else 0.0."""
    want = {normalise_answer(a) for a in accepted if str(a).strip()}
    tail = _after_marker(answer, ["Answer:"])
    text = tail if tail is not None else answer
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    tries = {normalise_answer(text)} | ({normalise_answer(lines[0])} if lines else set())
    return 1.0 if want & tries else 0.0


def evidence_cited(citations: Sequence[dict[str, Any]], evidence: Sequence[dict[str, Any]]) -> float:
    """1.0 when every evidence piece ``{"doc", "text"}`` lies (whitespace-normalised) inside
    the ``text`` of a citation ``{"doc_name", "text"}`` of the same document; 0.0 otherwise
    (and for no evidence)."""
    if not evidence:
        return 0.0

    def flat(s: str) -> str:
        return " ".join(s.split())

    for ev in evidence:
        piece = flat(str(ev.get("text", "")))
        if not piece or not any(
            c.get("doc_name") == ev.get("doc") and piece in flat(str(c.get("text", ""))) for c in citations
        ):
            return 0.0
    return 1.0


def score(answer_type: str, answer: str | None, gold: Any, meta: dict[str, Any] | None = None) -> float:
    """Score ``answer`` against ``gold`` with the scorer of ``answer_type``; a missing
    answer scores 0. Raises ValueError for an unknown type."""
    text = answer or ""
    if answer_type == "substring":
        return score_substring(text, str(gold))
    if answer_type == "numeric":
        return score_numeric(text, gold)
    if answer_type == "label":
        return score_label(text, str(gold))
    if answer_type == "comparison":
        return score_comparison(text, str(gold))
    if answer_type == "pairs":
        return pairs_f1(text, gold)
    if answer_type == "choice":
        return score_choice(text, str(gold), (meta or {}).get("options", ()))
    if answer_type == "exact":
        return score_exact(text, (meta or {}).get("accepted") or [str(gold)])
    raise ValueError(f"unknown answer_type {answer_type!r}")
